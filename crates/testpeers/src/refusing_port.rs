//! A loopback port where a connection is refused, and stays refused for as long as the test needs.
//!
//! Binding a listener, reading its port and dropping it frees the port; on a machine running tests
//! in parallel another test's server may be given that same port a moment later, and the "nothing
//! listens here" test then talks TLS to a stranger (seen in CI). A socket that is bound but never
//! listens keeps the port out of everyone else's reach, while the kernel answers every connection
//! attempt with a reset — exactly an address where nothing listens.

use std::net::SocketAddr;

/// Holds a bound, non-listening loopback socket; connecting to [`RefusingPort::port`] is refused
/// until this value is dropped.
pub struct RefusingPort {
    socket: tokio::net::TcpSocket,
}

impl RefusingPort {
    /// Binds `127.0.0.1:0` without listening. Panics (test-only) when the loopback cannot be bound.
    pub fn bind() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("creating a TCP socket");
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        socket.bind(loopback).expect("binding 127.0.0.1:0");
        Self { socket }
    }

    pub fn port(&self) -> u16 {
        self.socket
            .local_addr()
            .expect("a bound socket has an address")
            .port()
    }
}

#[cfg(test)]
mod tests {
    use super::RefusingPort;

    #[tokio::test]
    async fn connections_are_refused_and_the_port_cannot_be_taken() {
        let refusing = RefusingPort::bind();
        let port = refusing.port();
        let err = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect_err("nothing listens");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_err(),
            "the port stays reserved while held"
        );
    }
}
