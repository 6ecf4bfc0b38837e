//! Where the clients print: Python's `sys.stdout`, a line at a time, from a thread that has let
//! the GIL go. Each line is also where a Ctrl-C is noticed: the signal's exception is kept and
//! the client stops with `Interrupted`.

use std::io;

use pyo3::prelude::*;

pub struct PyOut {
    quiet: bool,
    buf: Vec<u8>,
    err: Option<PyErr>,
}

impl PyOut {
    pub fn stdout(quiet: bool) -> PyOut {
        PyOut {
            quiet,
            buf: Vec::new(),
            err: None,
        }
    }

    fn emit(&mut self, line: &[u8]) -> io::Result<()> {
        let quiet = self.quiet;
        let text = String::from_utf8_lossy(line).into_owned();
        let r = Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if !quiet {
                let out = py.import("sys")?.getattr("stdout")?;
                out.call_method1("write", (text,))?;
                out.call_method0("flush")?;
            }
            Ok(())
        });
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                self.err = Some(e);
                Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"))
            }
        }
    }

    /// Prints what is left and raises what stopped the client (a KeyboardInterrupt), if
    /// anything did.
    pub fn flush_py(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        if !self.buf.is_empty() && !self.quiet {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            self.buf.clear();
            crate::node::write_stdout(py, &text)?;
        }
        Ok(())
    }
}

impl io::Write for PyOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.err.is_some() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            self.emit(&line)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
