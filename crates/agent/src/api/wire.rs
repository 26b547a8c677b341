//! The connection under hyper, for the errors hyper answers itself.
//!
//! A request hyper cannot parse never reaches a route: hyper answers it with a status and no
//! body (400 for a malformed request line or header, 414 for a URI over 64 KiB, 431 for
//! headers over its buffer) and closes the connection. [`JsonErrors`] sits between hyper and
//! the socket (or the TLS stream) and gives that answer the API's JSON error body, and the
//! headers every answer carries. It knows the answer by its shape: a 4xx head with
//! `connection: close`, `content-length: 0` and no content type, written alone; every error
//! the routes answer has a JSON body, so none has that shape.

use std::{
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::{message_of, ApiError};

/// A connection whose bodiless 4xx answers (hyper's own) are given the JSON error body.
#[derive(Debug)]
pub struct JsonErrors<S> {
    inner: S,
    /// The rewritten answer, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
    /// The length of what hyper wrote, reported (to hyper's write, which it repeats until
    /// answered) once the rewritten answer is out; 0: nothing rewritten.
    owed: usize,
}

impl<S> JsonErrors<S> {
    /// Wraps a connection.
    pub fn new(inner: S) -> JsonErrors<S> {
        JsonErrors { inner, pending: Vec::new(), written: 0, owed: 0 }
    }
}

/// The head of an answer hyper gives by itself, or none.
fn automatic(buf: &[u8]) -> Option<StatusCode> {
    if buf.len() > 1024
        || !(buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.0 4"))
        || !buf.ends_with(b"\r\n\r\n")
    {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?;
    let mut lines = head.split("\r\n").skip(1);
    let headers: Vec<String> = lines.by_ref().map(str::to_ascii_lowercase).collect();
    let has = |header: &str| headers.iter().any(|l| l.replace(' ', "") == header);
    let typed = headers.iter().any(|l| l.starts_with("content-type:"));
    if !has("content-length:0") || !has("connection:close") || typed {
        return None;
    }
    StatusCode::from_bytes(head.get(9..12)?.as_bytes()).ok()
}

/// The answer `head` with the JSON error body for its status.
fn rewrite(head: &[u8], status: StatusCode) -> Vec<u8> {
    let message = match status {
        StatusCode::BAD_REQUEST => {
            "the request could not be read as HTTP/1.1 (a malformed request line or header)"
                .to_owned()
        }
        _ => message_of(status, "", ""),
    };
    let body = ApiError::for_status(status, message).body();
    let head = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in head.trim_end().split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("content-length:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("content-type: application/json\r\n");
    out.push_str(&format!("content-length: {}\r\n", body.len()));
    for (name, value) in super::SECURITY_HEADERS {
        out.push_str(&format!("{}: {value}\r\n", name.as_str()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    /// Writes what is pending.
    fn push(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Writes what is pending; then reports the length hyper wrote, as written.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        ready!(self.push(cx))?;
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(std::mem::take(&mut self.owed)))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.owed == 0 {
            let Some(status) = automatic(buf) else {
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            };
            self.pending = rewrite(buf, status);
            self.owed = buf.len();
        }
        self.drain(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.owed == 0 {
            let mut filled = bufs.iter().filter(|b| !b.is_empty());
            let (Some(first), None) = (filled.next(), filled.next()) else {
                return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            };
            let Some(status) = automatic(first) else {
                return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            };
            self.pending = rewrite(first, status);
            self.owed = first.len();
        }
        self.drain(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.push(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.push(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_answers_get_the_json_body() {
        let head = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 23:16:53 GMT\r\n\r\n";
        assert_eq!(automatic(head), Some(StatusCode::URI_TOO_LONG));
        let out = String::from_utf8(rewrite(head, StatusCode::URI_TOO_LONG)).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\nconnection: close\r\n"), "{head}");
        assert!(head.contains("\r\ndate: Mon, 07 Dec 2026"), "{head}");
        assert!(head.contains("\r\ncontent-type: application/json\r\n"), "{head}");
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())), "{head}");
        assert!(head.contains("\r\nx-content-type-options: nosniff"), "{head}");
        assert_eq!(body, r#"{"error":{"code":"uri_too_long","message":"the URI is too long"}}"#);
        // Answers of the routes (a JSON body), successes and partial writes are left alone.
        for other in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert_eq!(automatic(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}
