//! The byte streams the gateway speaks over, so that sessions and server
//! connections run over TCP in production and over in-memory pipes
//! (`tokio::io::duplex`) in scenario tests, with the same code.
//!
//! - [`ClientStream`]: what a client session needs of its stream: tokio's
//!   `AsyncRead + AsyncWrite`, plus waiting for input without a buffer (an
//!   idle client holds none).
//! - [`ServerStream`]: a server connection's stream. TCP is its own variant
//!   (no indirection on the hot path); any other `AsyncRead + AsyncWrite`
//!   (a test's pipe; TLS later) is boxed.
//! - [`Connector`]: how a pool opens a server stream; [`TcpConnector`] in
//!   production, a test's own in scenario tests.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;

/// A client connection's stream.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Resolves once a read would not block (bytes, end of stream or an
    /// error), without reading anything, so that an idle client can wait
    /// without holding a read buffer. A stream that cannot tell resolves at
    /// once (its reader then waits with a buffer).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;

    /// Writes what fits without waiting (a last message to a client being
    /// closed from outside its task).
    fn write_now(&mut self, bytes: &[u8]);
}

impl ClientStream for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        TcpStream::readable(self)
    }

    fn write_now(&mut self, bytes: &[u8]) {
        let _ = self.try_write(bytes);
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        let (socket, tls) = self.get_ref();
        // Decrypted bytes waiting (or a close_notify) mean a read would not
        // block even if the socket has nothing new.
        let buffered = !tls.wants_read();
        async move {
            if buffered {
                Ok(())
            } else {
                socket.readable().await
            }
        }
    }

    fn write_now(&mut self, bytes: &[u8]) {
        let mut cx = Context::from_waker(Waker::noop());
        let _ = Pin::new(&mut *self).poll_write(&mut cx, bytes);
        let _ = Pin::new(self).poll_flush(&mut cx);
    }
}

impl ClientStream for DuplexStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
    }

    fn write_now(&mut self, bytes: &[u8]) {
        let mut cx = Context::from_waker(Waker::noop());
        let _ = Pin::new(self).poll_write(&mut cx, bytes);
    }
}

/// Any stream a server connection can run over besides plain TCP.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// A server connection's stream.
pub enum ServerStream {
    Tcp(TcpStream),
    Other(Box<dyn ByteStream>),
}

impl ServerStream {
    /// Wraps any byte stream (a test's in-memory pipe).
    pub fn other(stream: impl ByteStream + 'static) -> ServerStream {
        ServerStream::Other(Box::new(stream))
    }

    /// Whether nothing arrived from the server and it did not close, without
    /// blocking: a pooled idle connection whose server restarted has a FATAL
    /// message or an end of stream waiting (then the connection is unusable,
    /// and what was read does not matter).
    pub fn is_quiet(&mut self) -> bool {
        let mut probe = [0u8; 1];
        match self {
            ServerStream::Tcp(stream) => {
                matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            ServerStream::Other(stream) => {
                let mut cx = Context::from_waker(Waker::noop());
                let mut buf = ReadBuf::new(&mut probe);
                Pin::new(stream).poll_read(&mut cx, &mut buf).is_pending()
            }
        }
    }

    /// Writes what fits without waiting (a goodbye to a server being closed).
    pub fn write_now(&mut self, bytes: &[u8]) {
        match self {
            ServerStream::Tcp(stream) => {
                let _ = stream.try_write(bytes);
            }
            ServerStream::Other(stream) => {
                let mut cx = Context::from_waker(Waker::noop());
                let _ = Pin::new(stream).poll_write(&mut cx, bytes);
            }
        }
    }
}

impl AsyncRead for ServerStream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            ServerStream::Other(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            ServerStream::Other(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            ServerStream::Other(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            ServerStream::Other(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// The future of [`Connector::connect`].
pub type Connecting<'a> = Pin<Box<dyn Future<Output = io::Result<ServerStream>> + Send + 'a>>;

/// Opens streams to servers (for pools, and for forwarding cancel requests).
pub trait Connector: Send + Sync + 'static {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> Connecting<'a>;
}

/// Plain TCP, with Nagle's algorithm off (requests and answers are small
/// and latency-bound).
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> Connecting<'a> {
        Box::pin(async move {
            let stream = TcpStream::connect((host, port)).await?;
            let _ = stream.set_nodelay(true);
            Ok(ServerStream::Tcp(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_boxed_stream_reports_input_and_end_of_stream() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut stream = ServerStream::other(ours);
        assert!(stream.is_quiet());
        theirs.write_all(b"E").await.unwrap();
        assert!(!stream.is_quiet(), "a message arrived");
        stream.write_now(b"X");
        let mut got = [0u8; 1];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"X");
        drop(theirs);
        assert!(!stream.is_quiet(), "the peer closed");
    }
}
