//! Opening a PDF the way readers do: files with a damaged or missing cross-reference table get
//! one rebuilt from the objects actually in the file, pages cut off from a broken page tree are
//! found again, and encrypted files are opened with the user's password (lopdf itself only
//! tries the empty one).
use super::{corrupt, guarded};
use crate::error::{DocError, ErrorKind, Result};
use lopdf::Document;

/// The document, and whether its pages had to be found outside the page tree.
pub fn load(bytes: &[u8], password: Option<&str>) -> Result<(Document, bool)> {
    let mut doc = open(bytes, password)?;
    let orphans = doc.page_iter().next().is_none();
    if orphans {
        adopt_orphan_pages(&mut doc);
    }
    Ok((doc, orphans))
}

fn open(bytes: &[u8], password: Option<&str>) -> Result<Document> {
    let doc = match guarded("cannot read PDF", || Document::load_mem(bytes).map_err(|e| e.to_string())) {
        // Encrypted files are judged after decryption; others must reach at least one page.
        Ok(doc) if has_encrypt(&doc) || (doc.catalog().is_ok() && doc.page_iter().next().is_some()) => doc,
        first => {
            let repaired =
                rebuild_xref(bytes).ok_or_else(|| first.err().unwrap_or_else(|| corrupt("PDF has no readable pages (damaged page tree)")))?;
            guarded("cannot read PDF (even after rebuilding its cross-reference table)", || Document::load_mem(&repaired).map_err(|e| e.to_string()))?
        }
    };
    // lopdf decrypts on load when the empty user password works; otherwise only the
    // encryption dictionary is loaded and we load again with the real password.
    if !has_encrypt(&doc) || doc.encryption_state.is_some() {
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

/// When the page tree's root is missing, the /Type /Page objects still in the file become the
/// kids of a new root, in file order: a linearized file's first page (its /O), then by number.
fn adopt_orphan_pages(doc: &mut Document) {
    use lopdf::Object;
    let first = doc.objects.values().find_map(|o| {
        let dict = o.as_dict().ok()?;
        dict.has(b"Linearized").then(|| dict.get(b"O").and_then(Object::as_i64).ok()).flatten()
    });
    let mut pages: Vec<lopdf::ObjectId> =
        doc.objects.iter().filter(|(_, o)| o.as_dict().is_ok_and(|d| d.has_type(b"Page"))).map(|(id, _)| *id).collect();
    pages.sort_by_key(|id| (Some(i64::from(id.0)) != first, *id));
    if pages.is_empty() || doc.catalog().is_err() {
        return;
    }
    let mut tree = lopdf::Dictionary::new();
    tree.set("Type", Object::Name(b"Pages".to_vec()));
    tree.set("Kids", pages.iter().map(|id| Object::Reference(*id)).collect::<Vec<_>>());
    tree.set("Count", pages.len() as i64);
    let tree = doc.add_object(tree);
    for id in &pages {
        if let Ok(page) = doc.get_dictionary_mut(*id) {
            page.set("Parent", tree);
        }
    }
    if let Ok(catalog) = doc.catalog_mut() {
        catalog.set("Pages", tree);
    }
}

/// lopdf's `is_encrypted` misses an /Encrypt dictionary written directly in the trailer.
fn has_encrypt(doc: &Document) -> bool {
    doc.trailer.get(b"Encrypt").is_ok()
}

/// Loads the file with its /Encrypt trailer entry and /ObjStm types hidden (so lopdf parses
/// every object as is and leaves the still-encrypted object streams alone), then decrypts all
/// objects with `password` and unpacks the object streams. R6 passwords are SASLprep'd, so a
/// second try uses the NFKC form without soft hyphens.
fn decrypt_with(bytes: &[u8], encrypted: &Document, password: &str) -> Result<Document> {
    use unicode_normalization::UnicodeNormalization;
    let encrypt = encryption_dict(encrypted);
    let source = rename_keys(rename_keys(bytes.to_vec(), b"/Encrypt"), b"/ObjStm");
    let source = source.as_slice();
    let base = guarded("cannot read encrypted PDF", || Document::load_mem(source).map_err(|e| e.to_string())).or_else(|_| {
        rebuild_xref(source)
            .ok_or_else(|| corrupt("cannot read encrypted PDF"))
            .and_then(|r| guarded("cannot read encrypted PDF", || Document::load_mem(&r).map_err(|e| e.to_string())))
    })?;
    let candidates = [password.to_string(), password.nfkc().filter(|&c| c != '\u{AD}').collect()];
    for candidate in candidates {
        let mut doc = base.clone();
        if let Some((id, dict)) = &encrypt {
            doc.objects.insert(*id, lopdf::Object::Dictionary(dict.clone()));
            doc.trailer.set("Encrypt", lopdf::Object::Reference(*id));
        }
        // lopdf derives the file key from the user password only; an RC4-era owner password
        // first yields the user password (for R6 lopdf handles both).
        let decrypted = match user_password_from_owner(&doc, &candidate) {
            Some(user) => guarded("cannot decrypt PDF", || doc.decrypt_raw(&user).map_err(|e| e.to_string())),
            None => guarded("cannot decrypt PDF", || doc.decrypt(&candidate).map_err(|e| e.to_string())),
        };
        if decrypted.is_ok() {
            unpack_object_streams(&mut doc);
            return Ok(doc);
        }
    }
    Err(DocError::new(ErrorKind::Encrypted, "wrong password for the encrypted PDF")
        .with_hint("check the password passed as docchat_ingest(..., password => '...')"))
}

/// Passwords of revisions 2–4 are PDFDocEncoding bytes; Latin-1 covers the characters users type.
fn latin1(password: &str) -> Vec<u8> {
    password.chars().filter_map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// Algorithm 7 of ISO 32000 (revisions 2–4): when `password` is the owner password, the user
/// password is the /O entry decrypted with a key derived from it. None when it is not.
fn user_password_from_owner(doc: &Document, password: &str) -> Option<Vec<u8>> {
    use md5::{Digest, Md5};
    let dict = doc.get_encrypted().ok()?;
    let revision = dict.get(b"R").and_then(lopdf::Object::as_i64).ok()?;
    if !(2..=4).contains(&revision) || doc.authenticate_raw_user_password(latin1(password)).is_ok() {
        return None;
    }
    let owner_value = dict.get(b"O").and_then(lopdf::Object::as_str).ok()?;
    let mut padded = latin1(password);
    padded.truncate(32);
    padded.extend_from_slice(&PASSWORD_PAD[..32 - padded.len()]);
    let mut hash = Md5::digest(&padded);
    let n = if revision == 2 {
        5
    } else {
        for _ in 0..50 {
            hash = Md5::digest(hash);
        }
        (dict.get(b"Length").and_then(lopdf::Object::as_i64).unwrap_or(40) as usize / 8).clamp(5, 16)
    };
    let mut user = owner_value.to_vec();
    let rounds = if revision == 2 { 0..=0 } else { 0..=19 };
    for i in rounds.rev() {
        let key: Vec<u8> = hash[..n].iter().map(|b| b ^ i).collect();
        user = rc4(&key, &user);
    }
    doc.authenticate_raw_user_password(&user).is_ok().then_some(user)
}

const PASSWORD_PAD: [u8; 32] = [
    0x28, 0xBF, 0x4E, 0x5E, 0x4E, 0x75, 0x8A, 0x41, 0x64, 0x00, 0x4E, 0x56, 0xFF, 0xFA, 0x01, 0x08, 0x2E, 0x2E, 0x00, 0xB6, 0xD0, 0x68, 0x3E, 0x80,
    0x2F, 0x0C, 0xA9, 0xFE, 0x64, 0x53, 0x69, 0x7A,
];

/// RC4, needed only for the password step above (lopdf keeps its own private).
fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut s: Vec<u8> = (0..=255).collect();
    let mut j = 0u8;
    for i in 0..256 {
        j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
        s.swap(i, j as usize);
    }
    let (mut i, mut j) = (0u8, 0u8);
    data.iter()
        .map(|b| {
            i = i.wrapping_add(1);
            j = j.wrapping_add(s[i as usize]);
            s.swap(i as usize, j as usize);
            b ^ s[s[i as usize].wrapping_add(s[j as usize]) as usize]
        })
        .collect()
}

/// The encryption dictionary as an object (a direct trailer dictionary gets a free object
/// number), tidied the way readers tolerate: lopdf rejects a /Length beside V 1, 4 or 5 (where
/// the key length is fixed) and /O, /U hashes padded beyond their fixed length.
fn encryption_dict(doc: &Document) -> Option<(lopdf::ObjectId, lopdf::Dictionary)> {
    let (id, mut dict) = match doc.trailer.get(b"Encrypt").ok()? {
        lopdf::Object::Reference(id) => (*id, doc.get_dictionary(*id).ok()?.clone()),
        lopdf::Object::Dictionary(dict) => ((doc.max_id + 1, 0), dict.clone()),
        _ => return None,
    };
    let version = dict.get(b"V").and_then(lopdf::Object::as_i64).unwrap_or(0);
    match version {
        1 => drop(dict.remove(b"Length")),
        4 => dict.set("Length", 128),
        5 => dict.set("Length", 256),
        _ => {}
    }
    let revision = dict.get(b"R").and_then(lopdf::Object::as_i64).unwrap_or(0);
    let hash_len = if revision >= 5 { 48 } else { 32 };
    for (key, len) in [(&b"O"[..], hash_len), (b"U", hash_len), (b"OE", 32), (b"UE", 32)] {
        if let Ok(lopdf::Object::String(value, _)) = dict.get_mut(key) {
            value.truncate(len);
        }
    }
    Some((id, dict))
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
        offsets
            .iter()
            .rev()
            .find(|(_, (start, _))| {
                let end = find(&bytes[*start..], b"endobj").map_or(bytes.len(), |e| start + e);
                let body = String::from_utf8_lossy(&bytes[*start..end.min(start + 4096)]).replace(' ', "");
                body.contains("/Type/Catalog")
            })
            .map(|(n, (_, g))| format!("{n} {g} R"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        crate::parse::shared_file(&format!("corpus/pdf/{name}"))
    }

    #[test]
    fn rc4_matches_the_published_test_vector() {
        // RFC 6229-style classic vector: key "Key", plaintext "Plaintext".
        assert_eq!(rc4(b"Key", b"Plaintext"), [0xBB, 0xF3, 0x16, 0xE8, 0xD9, 0x40, 0xAF, 0x0A, 0xD3]);
    }

    #[test]
    fn rc4_era_owner_password_yields_the_user_password() {
        // R3, user 'openpassword', owner 'permissionpassword' (sample-files README).
        let doc = Document::load_mem(&corpus("samplefiles__005-libreoffice-writer-password.pdf")).unwrap();
        let user = user_password_from_owner(&doc, "permissionpassword").unwrap();
        assert_eq!(&user[..12], b"openpassword");
        assert_eq!(user_password_from_owner(&doc, "openpassword"), None, "already the user password");
        assert_eq!(user_password_from_owner(&doc, "wrong"), None);
    }

    #[test]
    fn encryption_dictionary_is_tidied_for_lopdf() {
        // Direct trailer dictionary (issue6010_1) and zero-padded 127-byte /O, /U (print_protection).
        let direct = Document::load_mem(&corpus("pdfjs__issue6010_1.pdf")).unwrap();
        assert!(has_encrypt(&direct) && !direct.is_encrypted());
        let (id, _) = encryption_dict(&direct).unwrap();
        assert_eq!(id, (direct.max_id + 1, 0));
        let padded = Document::load_mem(&corpus("pdfjs__print_protection.pdf")).unwrap();
        let (_, dict) = encryption_dict(&padded).unwrap();
        for (key, len) in [(&b"O"[..], 48), (b"U", 48), (b"OE", 32), (b"UE", 32)] {
            assert_eq!(dict.get(key).unwrap().as_str().unwrap().len(), len);
        }
    }

    #[test]
    fn pages_cut_off_from_the_page_tree_are_found() {
        // The page tree root (172) is among the objects missing from the file.
        let (doc, orphans) = load(&corpus("samplefiles__017-unreadablemetadata.pdf"), None).unwrap();
        assert!(orphans);
        let pages: Vec<_> = doc.get_pages().into_values().collect();
        assert_eq!(pages, [(178, 0), (1, 0), (43, 0)], "linearized first page first, then by number");
    }
}
