//! HTTPS for `tapir load`: a rustls client session per connection, driven by the worker's
//! run-to-completion loop with no thread of its own. TLS records go through the stack's
//! `tcp_send` / `tcp_recv`; the HTTP request and response framing above them is the same as
//! over plain TCP. Certificates are checked against the Mozilla roots (webpki-roots) and
//! `--cacert` unless `--insecure`; sessions are resumed (TLS 1.3 tickets, TLS 1.2 IDs) unless
//! `--no-resume`.

use std::io::{self, Read, Write};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use protocols::iface::{SocketHandle, Stack};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// What every connection of a run shares: the client configuration (and its session cache)
/// and the name the server's certificate must carry.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

/// The TLS options of a run.
#[derive(Debug, Clone, Default)]
pub struct TlsOpts<'a> {
    pub insecure: bool,
    pub cacert: Option<&'a str>,
    pub resume: bool,
}

impl TlsSetup {
    /// The configuration for server `host` (a name or an IP address).
    pub fn new(host: &str, o: &TlsOpts<'_>) -> Result<TlsSetup> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = o.cacert {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("--cacert {path}: cannot read it"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("--cacert {path}: not PEM certificates: {e}"))?;
            if certs.is_empty() {
                anyhow::bail!("--cacert {path}: no certificate in it; give a PEM file");
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| anyhow!("--cacert {path}: a certificate rustls refuses: {e}"))?;
            }
        }
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS set-up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        if o.insecure {
            config
                .dangerous()
                .set_certificate_verifier(Arc::new(AnyCertificate(provider)));
        }
        if !o.resume {
            config.resumption = Resumption::disabled();
        }
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| anyhow!("{host}: not a name TLS can check a certificate against: {e}"))?;
        Ok(TlsSetup {
            config: Arc::new(config),
            name,
        })
    }

    /// A client session for a new connection.
    pub fn session(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(self.config.clone(), self.name.clone())
    }
}

/// `--insecure`: any certificate is taken (its signatures over the handshake still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The stack's send side as a writer for rustls: what it does not take now waits in rustls.
struct ToStack<'a> {
    stack: &'a mut Stack,
    h: SocketHandle,
}

impl Write for ToStack<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.stack.tcp_send(self.h, buf) {
            Ok(n) if n > 0 => Ok(n),
            Ok(_) => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => Err(io::Error::other(e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hands the stack the TLS records `tls` has ready, as many as it takes.
pub fn flush(tls: &mut ClientConnection, stack: &mut Stack, h: SocketHandle) {
    let mut out = ToStack { stack, h };
    while tls.wants_write() {
        if tls.write_tls(&mut out).is_err() {
            break;
        }
    }
}

/// Queues plaintext (a request); it goes out once the handshake is done.
pub fn write(tls: &mut ClientConnection, data: &[u8]) {
    // rustls buffers plaintext in memory until it can be sent: the write takes it all.
    let _ = tls.writer().write_all(data);
}

/// Feeds TLS bytes read from the connection (empty: the peer closed) and appends the
/// plaintext they carried to `plain`. Err: the session failed (a certificate refused, a bad
/// record): nothing more can be read.
pub fn read(
    tls: &mut ClientConnection,
    mut data: &[u8],
    plain: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    loop {
        // Err: rustls's buffer is full until the plaintext is drained (below).
        let n = tls.read_tls(&mut data).unwrap_or(0);
        tls.process_new_packets()?;
        drain(tls, plain);
        if data.is_empty() || n == 0 {
            return Ok(());
        }
    }
}

fn drain(tls: &mut ClientConnection, plain: &mut Vec<u8>) {
    let mut buf = [0u8; 16 * 1024];
    // Ok(0): the server's close_notify; Err: nothing more now (or an EOF without one).
    while let Ok(n @ 1..) = tls.reader().read(&mut buf) {
        plain.extend_from_slice(&buf[..n]);
    }
}
