//! HTTPS: the bytes between a connection's socket and its HTTP, as they are or through TLS
//! (rustls: TLS 1.3 and 1.2, ALPN `http/1.1`, session resumption from rustls's server-side
//! session cache and tickets). The TLS state machine is I/O-free; this module moves its records
//! to and from the worker's socket without waiting: nothing here blocks, a full socket is
//! `WouldBlock` like the plain socket's.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use protocols::iface::{SocketHandle, Stack, TcpError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

/// Why the certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(
        "cannot read certificates from {0}: {1} (give a PEM file with -----BEGIN CERTIFICATE-----)"
    )]
    Certs(String, rustls::pki_types::pem::Error),
    #[error("{0} holds no certificate (give a PEM file with -----BEGIN CERTIFICATE-----)")]
    NoCert(String),
    #[error("cannot read a private key from {0}: {1} (give a PEM file with a PKCS#8, PKCS#1 or SEC1 key)")]
    Key(String, rustls::pki_types::pem::Error),
    #[error("the certificate and key do not make a TLS server: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS server every worker's HTTPS connections share, from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let name = |p: &Path| p.display().to_string();
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsSetupError::Certs(name(cert), e))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCert(name(cert)));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Key(name(key), e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How a connection's bytes travel.
pub enum Transport {
    Plain,
    Tls(Box<ServerConnection>),
}

/// The socket as an `io::Write` for rustls's records: a full socket is `WouldBlock`.
struct Socket<'a> {
    stack: &'a mut Stack,
    h: SocketHandle,
}

impl Write for Socket<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self.stack.tcp_send(self.h, b) {
            Ok(0) | Err(TcpError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => Ok(n),
            Err(e) => Err(io::Error::other(e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport {
    /// A fresh connection's transport: TLS when `config` is given.
    pub fn new(config: Option<&Arc<ServerConfig>>) -> Result<Transport, rustls::Error> {
        Ok(match config {
            None => Transport::Plain,
            Some(c) => Transport::Tls(Box::new(ServerConnection::new(c.clone())?)),
        })
    }

    /// Plaintext received into `buf`: Ok(0) at the end of the stream, `WouldBlock` when
    /// nothing has come.
    pub fn recv(
        &mut self,
        stack: &mut Stack,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<usize, TcpError> {
        let Transport::Tls(c) = self else {
            return stack.tcp_recv(h, buf);
        };
        loop {
            match c.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: the client's close_notify
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The stream ended without close_notify: a truncation, not an end.
                Err(_) => return Err(TcpError::Reset),
            }
            let n = stack.tcp_recv(h, buf)?;
            if n == 0 {
                return Ok(0);
            }
            let mut records = &buf[..n];
            while !records.is_empty() {
                let fed = c.read_tls(&mut records).map_err(|_| TcpError::Reset);
                let processed =
                    fed.and_then(|_| c.process_new_packets().map_err(|_| TcpError::Reset));
                if let Err(e) = processed {
                    // A bad record or handshake: rustls queued an alert; send it, then reset.
                    let _ = Self::push(c, stack, h);
                    return Err(e);
                }
            }
            // The handshake's answers (and tickets) go out as soon as they exist.
            Self::push(c, stack, h)?;
        }
    }

    /// Takes plaintext to send: how much was taken, `WouldBlock` while earlier records still
    /// wait for room in the socket.
    pub fn send(
        &mut self,
        stack: &mut Stack,
        h: SocketHandle,
        data: &[u8],
    ) -> Result<usize, TcpError> {
        let Transport::Tls(c) = self else {
            return stack.tcp_send(h, data);
        };
        Self::push(c, stack, h)?;
        if c.wants_write() {
            return Err(TcpError::WouldBlock);
        }
        let n = c.writer().write(data).map_err(|_| TcpError::Reset)?;
        Self::push(c, stack, h)?;
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        Ok(n)
    }

    /// The socket has room for more (and, through TLS, no record is still waiting for it).
    pub fn writable(&mut self, stack: &mut Stack, h: SocketHandle) -> Result<bool, TcpError> {
        if let Transport::Tls(c) = self {
            Self::push(c, stack, h)?;
            if c.wants_write() {
                return Ok(false);
            }
        }
        let room = stack.tcp_readiness(h)?;
        if let Some(e) = room.error {
            return Err(e);
        }
        Ok(room.writable)
    }

    /// Records rustls holds that the socket has not taken yet.
    pub fn pending(&self) -> bool {
        matches!(self, Transport::Tls(c) if c.wants_write())
    }

    /// Moves what can move: waiting records into the socket.
    pub fn flush(&mut self, stack: &mut Stack, h: SocketHandle) -> Result<(), TcpError> {
        match self {
            Transport::Plain => Ok(()),
            Transport::Tls(c) => Self::push(c, stack, h),
        }
    }

    /// Before a graceful close: TLS says close_notify (RFC 8446 §6.1).
    pub fn close(&mut self, stack: &mut Stack, h: SocketHandle) {
        if let Transport::Tls(c) = self {
            c.send_close_notify();
            let _ = Self::push(c, stack, h);
        }
    }

    fn push(c: &mut ServerConnection, stack: &mut Stack, h: SocketHandle) -> Result<(), TcpError> {
        let mut sock = Socket { stack, h };
        while c.wants_write() {
            match c.write_tls(&mut sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Err(TcpError::Reset),
            }
        }
        Ok(())
    }
}
