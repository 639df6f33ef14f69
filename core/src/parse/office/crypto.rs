//! Password-protected DOCX/XLSX/PPTX: an OLE compound file holding EncryptionInfo and the
//! AES-encrypted package. The `office-crypto` crate decrypts it; this module bounds what a
//! hostile file can make it do (hash rounds, output size) and recognises a wrong password,
//! which the crate does not check (it yields noise instead of a ZIP).
use crate::error::{DocError, ErrorKind, Result};
use std::io::{Cursor, Read};

/// Office writes 100,000; a file asking for far more would hold the backend for minutes.
const MAX_SPIN_COUNT: u64 = 1_000_000;

/// The decrypted package when `bytes` is an encrypted OOXML file, else None.
pub fn unlock(bytes: &[u8], password: Option<&str>, max_bytes: u64) -> Result<Option<Vec<u8>>> {
    if !bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        return Ok(None);
    }
    let Some((info, declared, stream_len)) = encryption_streams(bytes) else { return Ok(None) };
    let Some(password) = password else {
        return Err(DocError::new(ErrorKind::Encrypted, "password-protected Office document (encrypted OOXML)")
            .with_hint("pass the password as docchat_ingest(content, filename, password => '...')"));
    };
    if spin_count(&info).is_some_and(|n| n > MAX_SPIN_COUNT) {
        return Err(corrupt("its key derivation asks for more than a million hash rounds"));
    }
    if declared > stream_len || declared > max_bytes {
        return Err(corrupt(&format!("the encrypted package claims {declared} bytes")));
    }
    let owned = bytes.to_vec();
    let plain = match std::panic::catch_unwind(|| office_crypto::decrypt_from_bytes(owned, password)) {
        Ok(Ok(plain)) => plain,
        Ok(Err(office_crypto::DecryptError::Unimplemented(what))) => {
            return Err(DocError::new(ErrorKind::Unsupported, format!("this Office encryption ({what}) is not supported"))
                .with_hint("remove the password in the Office application and ingest the saved copy"))
        }
        Ok(Err(e)) => return Err(corrupt(&e.to_string())),
        Err(_) => return Err(corrupt("the decryptor failed")),
    };
    // A wrong key decrypts to noise; the right one to a ZIP package.
    if !plain.starts_with(b"PK\x03\x04") {
        return Err(DocError::new(ErrorKind::Encrypted, "wrong password for the encrypted Office document")
            .with_hint("check the password passed as docchat_ingest(..., password => '...')"));
    }
    Ok(Some(plain))
}

/// EncryptionInfo, the package size EncryptedPackage declares, and that stream's length.
fn encryption_streams(bytes: &[u8]) -> Option<(Vec<u8>, u64, u64)> {
    std::panic::catch_unwind(|| {
        let mut file = cfb::CompoundFile::open(Cursor::new(bytes)).ok()?;
        let package = file.open_stream("/EncryptedPackage").ok()?;
        let stream_len = package.len();
        let mut size = [0u8; 8];
        package.take(8).read_exact(&mut size).ok()?;
        let mut info = Vec::new();
        file.open_stream("/EncryptionInfo").ok()?.take(1 << 20).read_to_end(&mut info).ok()?;
        Some((info, u64::from_le_bytes(size), stream_len.saturating_sub(8)))
    })
    .ok()
    .flatten()
}

/// The agile descriptor's password key spinCount (standard encryption has a fixed 50,000).
fn spin_count(info: &[u8]) -> Option<u64> {
    let xml = std::str::from_utf8(info.get(8..)?).ok()?;
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let spin = e.attributes().flatten().find(|a| a.key.local_name().into_inner() == "spinCount");
                if let Some(a) = spin {
                    // Unreadable counts are as bad as huge ones.
                    return Some(a.value.trim().parse().unwrap_or(u64::MAX));
                }
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

fn corrupt(why: &str) -> DocError {
    DocError::new(ErrorKind::Corrupt, format!("damaged encrypted Office document: {why}")).with_hint("open and re-save it in the Office application")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office(name: &str) -> Vec<u8> {
        crate::parse::shared_file(&format!("corpus/office/{name}"))
    }

    #[test]
    fn protected_files_open_with_their_password_only() {
        for name in ["tika__testWORD_protected_passtika.docx", "tika__testEXCEL_protected_passtika.xlsx", "tika__testPPT_protected_passtika.pptx"] {
            let bytes = office(name);
            for given in [None, Some("not-tika")] {
                assert_eq!(unlock(&bytes, given, 1 << 30).unwrap_err().kind, ErrorKind::Encrypted, "{name} {given:?}");
            }
            let plain = unlock(&bytes, Some("tika"), 1 << 30).unwrap().unwrap();
            assert!(plain.starts_with(b"PK\x03\x04"), "{name}");
            assert_eq!(unlock(&bytes, Some("tika"), 1000).unwrap_err().kind, ErrorKind::Corrupt, "size limit");
        }
        assert_eq!(unlock(&office("tika__testEXCEL.xls"), Some("tika"), 1 << 30).unwrap(), None, "not encrypted OOXML");
    }

    #[test]
    fn spin_counts_are_read_from_the_agile_descriptor() {
        let info = |xml: &str| [&[4u8, 0, 4, 0, 0x40, 0, 0, 0][..], xml.as_bytes()].concat();
        let xml = r#"<encryption xmlns="http://schemas.microsoft.com/office/2006/encryption" xmlns:p="http://schemas.microsoft.com/office/2006/keyEncryptor/password"><keyData saltSize="16"/><keyEncryptors><keyEncryptor><p:encryptedKey spinCount="100000" saltSize="16"/></keyEncryptor></keyEncryptors></encryption>"#;
        assert_eq!(spin_count(&info(xml)), Some(100000));
        assert_eq!(spin_count(&info(&xml.replace("100000", "4000000000"))), Some(4_000_000_000));
        assert_eq!(spin_count(&info(&xml.replace("100000", "lots"))), Some(u64::MAX));
    }
}
