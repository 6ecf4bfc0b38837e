//! echo (RFC 862), daytime (RFC 867) and discard (RFC 863), on TCP and UDP.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;

use engine::{TcpListener, TcpStream, UdpSocket};

use super::daytime::daytime_string;
use super::Kind;

pub fn run_tcp(kind: Kind, listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept() {
        let _ = thread::Builder::new()
            .name(format!("{}-conn", kind.name()))
            .spawn(move || serve_tcp(kind, stream));
    }
}

fn serve_tcp(kind: Kind, mut stream: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    match kind {
        Kind::Echo => loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        },
        Kind::Discard => while let Ok(1..) = stream.read(&mut buf) {},
        Kind::Daytime => {
            let _ = stream.write_all(daytime_string().as_bytes());
        }
        Kind::Http => {}
    }
    let _ = stream.shutdown(Shutdown::Write);
    // Hold the stream until the peer closes too, so nothing queued is cut off.
    let _ = stream.wait_closed(Some(std::time::Duration::from_secs(10)));
}

pub fn run_udp(kind: Kind, socket: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        let _ = match kind {
            Kind::Echo => socket.send_to(&buf[..n], from),
            Kind::Daytime => socket.send_to(daytime_string().as_bytes(), from),
            _ => Ok(0),
        };
    }
}
