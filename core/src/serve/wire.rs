//! The worker's wire format: each message is a frame, a little-endian u32 length and that many
//! bytes, whose first byte says what it is. Vectors travel as raw f32, not text.
use crate::error::{DocError, ErrorKind, Result};
use std::io::{Read, Write};

/// Frames above this are refused: 64 texts of a few KB are typical, 256 MB is hostile.
pub const MAX_FRAME: usize = 256 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Embed `inputs` with a model.
    Embed { model: ModelKey, inputs: Vec<Input> },
    /// The worker's figures, as JSON.
    Stats,
}

/// Which model: its folder, what kind it is, and (sentence models) where input is truncated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelKey {
    pub dir: String,
    pub max_seq_len: usize,
    pub kind: ModelKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// A sentence-transformer: model.onnx + tokenizer.json; texts in.
    Sentence,
    /// CLIP's image tower: preprocessed 3×224×224 pixels in.
    ClipImage,
    /// CLIP's text tower and its tokenizer: texts in.
    ClipText,
}

impl ModelKey {
    pub fn sentence(dir: impl Into<String>, max_seq_len: usize) -> ModelKey {
        ModelKey { dir: dir.into(), max_seq_len, kind: ModelKind::Sentence }
    }
    pub fn clip(dir: impl Into<String>, kind: ModelKind) -> ModelKey {
        ModelKey { dir: dir.into(), max_seq_len: crate::clip::tokenizer::CONTEXT_LENGTH, kind }
    }
}

/// One thing to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    /// CLIP's preprocessed image tensor (backends preprocess: decoding stays out of the worker).
    Pixels(Vec<f32>),
}

impl From<&str> for Input {
    fn from(t: &str) -> Input {
        Input::Text(t.to_string())
    }
}

const KINDS: [ModelKind; 3] = [ModelKind::Sentence, ModelKind::ClipImage, ModelKind::ClipText];
const TEXT: u8 = b'T';
const PIXELS: u8 = b'P';

#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Vectors(Vec<Vec<f32>>),
    Error(DocError),
    Stats(String),
}

const EMBED: u8 = b'E';
const STATS: u8 = b'S';
const VECTORS: u8 = b'V';
const ERROR: u8 = b'X';
const STATS_JSON: u8 = b'J';

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        match self {
            Request::Embed { model, inputs } => {
                w.push(EMBED);
                put_str(&mut w, &model.dir);
                put_u32(&mut w, model.max_seq_len);
                w.push(KINDS.iter().position(|k| *k == model.kind).expect("listed") as u8);
                put_u32(&mut w, inputs.len());
                for input in inputs {
                    match input {
                        Input::Text(t) => {
                            w.push(TEXT);
                            put_str(&mut w, t);
                        }
                        Input::Pixels(p) => {
                            w.push(PIXELS);
                            put_u32(&mut w, p.len());
                            p.iter().for_each(|x| w.extend_from_slice(&x.to_le_bytes()));
                        }
                    }
                }
            }
            Request::Stats => w.push(STATS),
        }
        w
    }

    pub fn decode(frame: &[u8]) -> Result<Request> {
        let mut r = Reader(frame);
        match r.u8()? {
            EMBED => {
                let (dir, max_seq_len) = (r.string()?, r.u32()?);
                let kind = *KINDS.get(r.u8()? as usize).ok_or_else(|| malformed("unknown model kind"))?;
                let n = r.u32()?;
                let inputs = (0..n).map(|_| r.input()).collect::<Result<Vec<_>>>()?;
                Ok(Request::Embed { model: ModelKey { dir, max_seq_len, kind }, inputs })
            }
            STATS => Ok(Request::Stats),
            tag => Err(malformed(&format!("unknown request tag {tag}"))),
        }
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        match self {
            Response::Vectors(vs) => {
                w.push(VECTORS);
                put_u32(&mut w, vs.len());
                put_u32(&mut w, vs.first().map_or(0, Vec::len));
                for v in vs {
                    v.iter().for_each(|x| w.extend_from_slice(&x.to_le_bytes()));
                }
            }
            Response::Error(e) => {
                w.push(ERROR);
                put_str(&mut w, e.kind.name());
                put_str(&mut w, &e.message);
                put_str(&mut w, e.hint.as_deref().unwrap_or(""));
            }
            Response::Stats(json) => {
                w.push(STATS_JSON);
                put_str(&mut w, json);
            }
        }
        w
    }

    pub fn decode(frame: &[u8]) -> Result<Response> {
        let mut r = Reader(frame);
        match r.u8()? {
            VECTORS => {
                let (n, dim) = (r.u32()?, r.u32()?);
                let floats = r.take(n.checked_mul(dim).and_then(|c| c.checked_mul(4)).ok_or_else(|| malformed("vector size overflows"))?)?;
                let all: Vec<f32> = floats.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                Ok(Response::Vectors(if dim == 0 { vec![Vec::new(); n] } else { all.chunks(dim).map(<[f32]>::to_vec).collect() }))
            }
            ERROR => {
                let kind = ErrorKind::from_name(&r.string()?).unwrap_or(ErrorKind::ModelFailure);
                let mut e = DocError::new(kind, r.string()?);
                let hint = r.string()?;
                if !hint.is_empty() {
                    e = e.with_hint(hint);
                }
                Ok(Response::Error(e))
            }
            STATS_JSON => Ok(Response::Stats(r.string()?)),
            tag => Err(malformed(&format!("unknown response tag {tag}"))),
        }
    }
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&(payload.len() as u32).to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between frames.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let len = frame_len(len)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

pub fn frame_len(header: [u8; 4]) -> std::io::Result<usize> {
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame of {len} bytes is over the limit")));
    }
    Ok(len)
}

fn put_u32(w: &mut Vec<u8>, n: usize) {
    w.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put_u32(w, s.len());
    w.extend_from_slice(s.as_bytes());
}

fn malformed(what: &str) -> DocError {
    DocError::new(ErrorKind::ModelFailure, format!("malformed model worker message: {what}"))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<usize> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn input(&mut self) -> Result<Input> {
        match self.u8()? {
            TEXT => Ok(Input::Text(self.string()?)),
            PIXELS => {
                let n = self.u32()?;
                let bytes = self.take(n.checked_mul(4).ok_or_else(|| malformed("pixel count overflows"))?)?;
                Ok(Input::Pixels(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
            }
            tag => Err(malformed(&format!("unknown input tag {tag}"))),
        }
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u32()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| malformed("text is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_round_trip() {
        let model = ModelKey::sentence("/m/x", 384);
        let req = Request::Embed { model, inputs: vec!["héllo".into(), "".into(), "東京".into()] };
        assert_eq!(Request::decode(&req.encode()).unwrap(), req);
        let clip = Request::Embed { model: ModelKey::clip("/c", ModelKind::ClipImage), inputs: vec![Input::Pixels(vec![0.5, -2.0]), "x".into()] };
        assert_eq!(Request::decode(&clip.encode()).unwrap(), clip);
        assert_eq!(Request::decode(&Request::Stats.encode()).unwrap(), Request::Stats);
        let vecs = Response::Vectors(vec![vec![0.5, -1.25], vec![3.0, f32::MIN_POSITIVE]]);
        assert_eq!(Response::decode(&vecs.encode()).unwrap(), vecs);
        let err = Response::Error(DocError::new(ErrorKind::ModelUnavailable, "no model").with_hint("install it"));
        assert_eq!(Response::decode(&err.encode()).unwrap(), err);
        let plain = Response::Error(DocError::new(ErrorKind::ModelFailure, "boom"));
        assert_eq!(Response::decode(&plain.encode()).unwrap(), plain);
    }

    #[test]
    fn truncated_or_unknown_messages_are_errors() {
        let req = Request::Embed { model: ModelKey::clip("d", ModelKind::ClipImage), inputs: vec!["abc".into(), Input::Pixels(vec![1.0])] }.encode();
        for cut in 0..req.len() {
            assert!(Request::decode(&req[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Request::decode(b"Q").is_err());
        // A vector count whose byte size overflows is refused, not allocated.
        let mut huge = vec![VECTORS];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Response::decode(&huge).is_err());
    }

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"abc").unwrap();
        write_frame(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap().unwrap(), b"abc");
        assert_eq!(read_frame(&mut r).unwrap().unwrap(), b"");
        assert!(read_frame(&mut r).unwrap().is_none());
        let mut big = &((MAX_FRAME as u32 + 1).to_le_bytes())[..];
        assert!(read_frame(&mut big).is_err());
    }
}
