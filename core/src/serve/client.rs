//! A backend's connection to the model worker. Every wait is in slices of 100 ms so the caller
//! can check for query cancel and statement timeout between them.
use super::wire::{frame_len, Request, Response};
use crate::error::DocError;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const SLICE: Duration = Duration::from_millis(100);

pub struct Client {
    stream: UnixStream,
}

#[derive(Debug)]
pub enum CallError {
    /// The connection broke (the worker exited or restarted): reconnect and retry.
    Disconnected(io::Error),
    /// `stop` asked to give up; the connection is no longer usable.
    Stopped,
    /// The answer could not be read.
    Malformed(DocError),
}

impl Client {
    pub fn connect(socket: &Path) -> io::Result<Client> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(SLICE))?;
        stream.set_write_timeout(Some(SLICE))?;
        Ok(Client { stream })
    }

    /// Sends `request` and waits for the answer; `stop` is asked between slices of waiting.
    pub fn call(&mut self, request: &Request, stop: &mut dyn FnMut() -> bool) -> Result<Response, CallError> {
        let payload = request.encode();
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&payload);
        self.send(&frame, stop)?;
        let mut header = [0u8; 4];
        self.receive(&mut header, stop)?;
        let mut body = vec![0u8; frame_len(header).map_err(CallError::Disconnected)?];
        self.receive(&mut body, stop)?;
        Response::decode(&body).map_err(CallError::Malformed)
    }

    fn send(&mut self, mut buf: &[u8], stop: &mut dyn FnMut() -> bool) -> Result<(), CallError> {
        while !buf.is_empty() {
            match self.stream.write(buf) {
                Ok(0) => return Err(CallError::Disconnected(io::ErrorKind::WriteZero.into())),
                Ok(n) => buf = &buf[n..],
                Err(e) if waiting(&e) => check(stop)?,
                Err(e) => return Err(CallError::Disconnected(e)),
            }
        }
        Ok(())
    }

    fn receive(&mut self, buf: &mut [u8], stop: &mut dyn FnMut() -> bool) -> Result<(), CallError> {
        let mut got = 0;
        while got < buf.len() {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => return Err(CallError::Disconnected(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => got += n,
                Err(e) if waiting(&e) => check(stop)?,
                Err(e) => return Err(CallError::Disconnected(e)),
            }
        }
        Ok(())
    }
}

fn waiting(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

fn check(stop: &mut dyn FnMut() -> bool) -> Result<(), CallError> {
    if stop() {
        Err(CallError::Stopped)
    } else {
        Ok(())
    }
}
