//! Opening a PDF the way readers do: files with a damaged or missing cross-reference table get
//! one rebuilt from the objects actually in the file, and encrypted files are opened with the
//! user's password (lopdf itself only tries the empty one).
use super::{corrupt, guarded};
use crate::error::{DocError, ErrorKind, Result};
use lopdf::Document;

pub fn load(bytes: &[u8], password: Option<&str>) -> Result<Document> {
    let doc = match guarded("cannot read PDF", || Document::load_mem(bytes).map_err(|e| e.to_string())) {
        // Encrypted files are judged after decryption; others must reach at least one page.
        Ok(doc) if doc.is_encrypted() || (doc.catalog().is_ok() && doc.page_iter().next().is_some()) => doc,
        first => {
            let repaired = rebuild_xref(bytes).ok_or_else(|| first.err().unwrap_or_else(|| corrupt("PDF has no readable pages (damaged page tree)")))?;
            guarded("cannot read PDF (even after rebuilding its cross-reference table)", || {
                Document::load_mem(&repaired).map_err(|e| e.to_string())
            })?
        }
    };
    // lopdf decrypts on load when the empty user password works; otherwise only the
    // encryption dictionary is loaded and we load again with the real password.
    if !doc.is_encrypted() || doc.encryption_state.is_some() {
        return Ok(doc);
    }
    match password {
        Some(password) => decrypt_with(bytes, &doc, password),
        // Owner-password-only files open with the empty user password.
        None => decrypt_with(bytes, &doc, "").map_err(|_| {
            DocError::new(ErrorKind::Encrypted, "PDF is encrypted and needs a password")
                .with_hint("pass it as docchat_ingest(content, filename, password => '...')")
        }),
    }
}

/// Loads the file with its /Encrypt trailer entry and /ObjStm types hidden (so lopdf parses
/// every object as is and leaves the still-encrypted object streams alone), then decrypts all
/// objects with `password` and unpacks the object streams. R6 passwords are SASLprep'd, so a
/// second try uses the NFKC form without soft hyphens.
fn decrypt_with(bytes: &[u8], encrypted: &Document, password: &str) -> Result<Document> {
    use unicode_normalization::UnicodeNormalization;
    let encrypt = encrypted.trailer.get(b"Encrypt").ok().cloned();
    let source = rename_keys(rename_keys(bytes.to_vec(), b"/Encrypt"), b"/ObjStm");
    let source = source.as_slice();
    let base = guarded("cannot read encrypted PDF", || Document::load_mem(source).map_err(|e| e.to_string()))
        .or_else(|_| rebuild_xref(source).ok_or_else(|| corrupt("cannot read encrypted PDF")).and_then(|r| {
            guarded("cannot read encrypted PDF", || Document::load_mem(&r).map_err(|e| e.to_string()))
        }))?;
    let candidates = [password.to_string(), password.nfkc().filter(|&c| c != '\u{AD}').collect()];
    for candidate in candidates {
        let mut doc = base.clone();
        if let (Some(enc), Ok(id)) = (&encrypt, encrypt.as_ref().map_or(Err(()), |e| e.as_reference().map_err(|_| ()))) {
            doc.trailer.set("Encrypt", enc.clone());
            if let Ok(dict) = encrypted.get_object(id) {
                doc.objects.insert(id, dict.clone());
            }
        }
        if guarded("cannot decrypt PDF", || doc.decrypt(&candidate).map_err(|e| e.to_string())).is_ok() {
            unpack_object_streams(&mut doc);
            return Ok(doc);
        }
    }
    Err(DocError::new(ErrorKind::Encrypted, "wrong password for the encrypted PDF")
        .with_hint("check the password passed as docchat_ingest(..., password => '...')"))
}

/// Each whole-word `name` (so not `/EncryptMetadata`) with its last letter replaced by `_`:
/// same length, so every byte offset stays valid.
fn rename_keys(mut bytes: Vec<u8>, name: &[u8]) -> Vec<u8> {
    let mut i = 0;
    while let Some(pos) = find(&bytes[i..], name).map(|p| p + i) {
        if !bytes.get(pos + name.len()).is_some_and(|c| c.is_ascii_alphanumeric()) {
            bytes[pos + name.len() - 1] = b'_';
        }
        i = pos + name.len();
    }
    bytes
}

/// Restores the object streams hidden by `rename_keys` and adds the objects they hold.
fn unpack_object_streams(doc: &mut Document) {
    let mut unpacked = Vec::new();
    for object in doc.objects.values_mut() {
        let Ok(stream) = object.as_stream_mut() else { continue };
        if stream.dict.get(b"Type").and_then(lopdf::Object::as_name).ok() != Some(b"ObjSt_") {
            continue;
        }
        stream.dict.set("Type", lopdf::Object::Name(b"ObjStm".to_vec()));
        if let Ok(objects) = lopdf::ObjectStream::new(stream) {
            unpacked.extend(objects.objects);
        }
    }
    for (id, object) in unpacked {
        doc.objects.entry(id).or_insert(object);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A copy of the file with a fresh cross-reference table and trailer appended, built by
/// scanning for `N G obj` headers (the last definition of an object wins, as in an update).
fn rebuild_xref(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut offsets: std::collections::BTreeMap<u32, (usize, u16)> = Default::default();
    let mut i = 0;
    while let Some(p) = find(&bytes[i..], b"obj").map(|p| p + i) {
        i = p + 3;
        if let Some((num, gen, start)) = object_header_before(bytes, p) {
            offsets.insert(num, (start, gen));
        }
    }
    let size = offsets.keys().next_back()? + 1;
    let trailer = last_trailer_dict(bytes);
    let key_ref = |key: &str| -> Option<String> {
        let t = trailer.as_deref()?;
        let at = t.find(key)? + key.len();
        let rest = &t[at..];
        let r = rest.find('R')?;
        let value = rest[..r].trim();
        (value.split_whitespace().count() == 2 && value.split_whitespace().all(|w| w.chars().all(|c| c.is_ascii_digit())))
            .then(|| format!("{value} R"))
    };
    let root = key_ref("/Root").or_else(|| {
        offsets.iter().rev().find(|(_, (start, _))| {
            let end = find(&bytes[*start..], b"endobj").map_or(bytes.len(), |e| start + e);
            let body = String::from_utf8_lossy(&bytes[*start..end.min(start + 4096)]).replace(' ', "");
            body.contains("/Type/Catalog")
        }).map(|(n, (_, g))| format!("{n} {g} R"))
    })?;
    let mut out = bytes.to_vec();
    let xref_at = out.len() + 1;
    let mut table = format!("\nxref\n0 {size}\n0000000000 65535 f \n");
    for n in 1..size {
        match offsets.get(&n) {
            Some((off, gen)) => table.push_str(&format!("{off:010} {gen:05} n \n")),
            None => table.push_str("0000000000 65535 f \n"),
        }
    }
    let mut dict = format!("/Size {size} /Root {root}");
    for key in ["/Info", "/Encrypt"] {
        if let Some(r) = key_ref(key) {
            dict.push_str(&format!(" {key} {r}"));
        }
    }
    if let Some(id) = trailer.as_deref().and_then(|t| t.find("/ID").map(|a| &t[a..])).and_then(|t| t.find(']').map(|e| &t[..=e])) {
        dict.push(' ');
        dict.push_str(id);
    }
    table.push_str(&format!("trailer\n<< {dict} >>\nstartxref\n{xref_at}\n%%EOF\n"));
    out.extend_from_slice(table.as_bytes());
    Some(out)
}

/// For `obj` at `p`, the object number, generation and header offset if `N G obj` precedes it
/// at the start of a token.
fn object_header_before(bytes: &[u8], p: usize) -> Option<(u32, u16, usize)> {
    if bytes.get(p + 3).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut j = p;
    let mut fields = Vec::new();
    for _ in 0..2 {
        while j > 0 && bytes[j - 1].is_ascii_whitespace() {
            j -= 1;
        }
        let end = j;
        while j > 0 && bytes[j - 1].is_ascii_digit() {
            j -= 1;
        }
        if j == end || end - j > 10 {
            return None;
        }
        fields.push(std::str::from_utf8(&bytes[j..end]).ok()?.parse::<u64>().ok()?);
    }
    if j > 0 && !matches!(bytes[j - 1], b'\n' | b'\r' | b' ' | b'\t' | b'>' | b']' | b'}') {
        return None;
    }
    let (gen, num) = (fields[0], fields[1]);
    (num < 10_000_000 && gen < 65535).then_some((num as u32, gen as u16, j))
}

/// The text of the last `trailer << … >>` dictionary, or of the last xref stream's dictionary.
fn last_trailer_dict(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let start = text.rfind("trailer").map(|t| t + 7).or_else(|| text.rfind("/XRef").and_then(|x| text[..x].rfind("<<")))?;
    let rest = &text[start..];
    let open = rest.find("<<")?;
    let mut depth = 0;
    let b = rest.as_bytes();
    let mut k = open;
    while k + 1 < b.len() {
        if &b[k..k + 2] == b"<<" {
            depth += 1;
            k += 2;
        } else if &b[k..k + 2] == b">>" {
            depth -= 1;
            k += 2;
            if depth == 0 {
                return Some(rest[open..k].to_string());
            }
        } else {
            k += 1;
        }
    }
    None
}

