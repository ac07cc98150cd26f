//! A minimal raw protocol client for tests that must send what no driver
//! would: malformed, oversized or unusual messages.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One backend message: type and body.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Type byte.
    pub tag: u8,
    /// Body.
    pub body: Vec<u8>,
}

impl Msg {
    /// The SQLSTATE of an ErrorResponse.
    pub fn sqlstate(&self) -> Option<String> {
        self.field(b'C')
    }

    /// A field of an ErrorResponse/NoticeResponse.
    pub fn field(&self, t: u8) -> Option<String> {
        let mut parts = self.body.split(|b| *b == 0);
        for p in &mut parts {
            if p.first() == Some(&t) {
                return Some(String::from_utf8_lossy(&p[1..]).into_owned());
            }
        }
        None
    }
}

/// A raw connection.
pub struct Raw {
    /// The socket.
    pub s: TcpStream,
}

impl Raw {
    /// Connects to `port` on 127.0.0.1.
    pub async fn connect(port: u16) -> Self {
        Self {
            s: TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        }
    }

    /// Sends a StartupMessage for protocol 3.`minor` with `params`.
    pub async fn startup(&mut self, minor: u16, params: &[(&str, &str)]) {
        let mut b = BytesMut::new();
        b.put_i32(0);
        b.put_u16(3);
        b.put_u16(minor);
        for (k, v) in params {
            b.put_slice(k.as_bytes());
            b.put_u8(0);
            b.put_slice(v.as_bytes());
            b.put_u8(0);
        }
        b.put_u8(0);
        let len = b.len() as i32;
        b[..4].copy_from_slice(&len.to_be_bytes());
        self.send(&b).await;
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("send");
    }

    /// Sends a typed message.
    pub async fn send_msg(&mut self, tag: u8, body: &[u8]) {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32(body.len() as i32 + 4);
        b.put_slice(body);
        self.send(&b).await;
    }

    /// Reads one message; `None` at end of stream.
    pub async fn recv(&mut self) -> Option<Msg> {
        let mut h = [0u8; 5];
        self.s.read_exact(&mut h).await.ok()?;
        let len = i32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        self.s.read_exact(&mut body).await.ok()?;
        Some(Msg { tag: h[0], body })
    }

    /// Reads until a message with `tag` (returned) or the end of stream.
    pub async fn recv_until(&mut self, tag: u8) -> Option<Msg> {
        loop {
            let m = self.recv().await?;
            if m.tag == tag {
                return Some(m);
            }
        }
    }

    /// Logs in as a trust user and waits for ReadyForQuery.
    pub async fn login_trust(port: u16, user: &str, db: &str) -> Self {
        let mut r = Self::connect(port).await;
        r.startup(0, &[("user", user), ("database", db)]).await;
        let m = r.recv_until(b'Z').await.expect("ReadyForQuery after login");
        assert_eq!(m.tag, b'Z');
        r
    }

    /// Whether the peer closed the connection (after any pending messages).
    pub async fn closed(&mut self) -> bool {
        while let Some(_m) = self.recv().await {}
        true
    }
}
