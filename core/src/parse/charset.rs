//! Text encodings: BOMs, HTML meta charsets, UTF-16, single-byte code pages.
//!
//! Order of evidence: a BOM, then (for HTML) a `<meta>` charset that does not contradict the
//! bytes, then valid UTF-8, then statistical detection of a legacy encoding (chardetng).
use crate::error::{DocError, ErrorKind, Result};
use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::Encoding;

/// Decodes a text document. Fails only on damaged UTF-8/UTF-16/UTF-32, never guesses a
/// legacy encoding for text that is mostly UTF-8 (that would turn it into mojibake).
pub fn decode_text(bytes: &[u8]) -> Result<String> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest).map(str::to_owned).map_err(|e| invalid_utf8(3 + e.valid_up_to()));
    }
    if let Some((wide, bom)) = wide_unicode(bytes) {
        return wide.decode(&bytes[bom..]);
    }
    if let Some(text) = meta_charset(bytes).and_then(|enc| decode_declared(bytes, enc)) {
        return Ok(text);
    }
    let not_utf8 = match std::str::from_utf8(bytes) {
        Ok(s) => return Ok(s.to_owned()),
        Err(e) => e,
    };
    if mostly_utf8(bytes) {
        return Err(invalid_utf8(not_utf8.valid_up_to()));
    }
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    let encoding = detector.guess(None, Utf8Detection::Deny);
    Ok(encoding.decode_without_bom_handling(bytes).0.into_owned())
}

/// Decodes with an encoding named by a WHATWG label ("windows-1250", "shift_jis", …),
/// replacing malformed sequences; `None` when the label is unknown.
pub fn decode_with_label(bytes: &[u8], label: &str) -> Option<String> {
    let encoding = Encoding::for_label(label.as_bytes())?;
    Some(encoding.decode_without_bom_handling(bytes).0.into_owned())
}

/// Whether the bytes are UTF-16 or UTF-32 (with a BOM, or BOM-less mostly-ASCII UTF-16):
/// their NUL bytes are text, not a sign of binary data.
pub fn is_utf16_or_32(bytes: &[u8]) -> bool {
    wide_unicode(bytes).is_some()
}

#[derive(Clone, Copy)]
enum Wide {
    Utf16 { le: bool },
    Utf32 { le: bool },
}

impl Wide {
    fn decode(self, bytes: &[u8]) -> Result<String> {
        let invalid = |m: String| DocError::new(ErrorKind::InvalidEncoding, m);
        match self {
            Wide::Utf16 { le } => {
                if !bytes.len().is_multiple_of(2) {
                    return Err(invalid("UTF-16 text has an odd number of bytes".into()));
                }
                let unit = |c: &[u8]| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) };
                char::decode_utf16(bytes.chunks_exact(2).map(unit))
                    .collect::<std::result::Result<String, _>>()
                    .map_err(|e| invalid(format!("invalid UTF-16 text: {e}")))
            }
            Wide::Utf32 { le } => {
                if !bytes.len().is_multiple_of(4) {
                    return Err(invalid("UTF-32 text has a byte count that is not a multiple of 4".into()));
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| {
                        let v = if le { u32::from_le_bytes([c[0], c[1], c[2], c[3]]) } else { u32::from_be_bytes([c[0], c[1], c[2], c[3]]) };
                        char::from_u32(v).ok_or_else(|| invalid(format!("invalid UTF-32 code point {v:#x}")))
                    })
                    .collect()
            }
        }
    }
}

/// The wide Unicode form and its BOM length. UTF-32LE's BOM starts like UTF-16LE's, so it
/// is tested first. Without a BOM, UTF-16 shows as NULs in every other byte of ASCII text.
fn wide_unicode(bytes: &[u8]) -> Option<(Wide, usize)> {
    const BOMS: [(&[u8], Wide); 4] = [
        (b"\xFF\xFE\0\0", Wide::Utf32 { le: true }),
        (b"\0\0\xFE\xFF", Wide::Utf32 { le: false }),
        (b"\xFF\xFE", Wide::Utf16 { le: true }),
        (b"\xFE\xFF", Wide::Utf16 { le: false }),
    ];
    if let Some((bom, wide)) = BOMS.iter().find(|(bom, _)| bytes.starts_with(bom)) {
        return Some((*wide, bom.len()));
    }
    let pairs = || bytes[..bytes.len().min(4096)].chunks_exact(2);
    let n = pairs().len();
    let le = pairs().filter(|p| p[0] != 0 && p[1] == 0).count();
    let be = pairs().filter(|p| p[0] == 0 && p[1] != 0).count();
    // Three quarters of the units ASCII, hardly any in the other byte order.
    let sure = |hits: usize, other: usize| n >= 2 && hits * 4 >= n * 3 && other * 10 < n;
    if sure(le, be) {
        Some((Wide::Utf16 { le: true }, 0))
    } else if sure(be, le) {
        Some((Wide::Utf16 { le: false }, 0))
    } else {
        None
    }
}

/// The encoding named by a `<meta charset=…>` or `<meta http-equiv … content="…; charset=…">`
/// in the first 1024 bytes, as the HTML prescan reads it (UTF-16 labels mean UTF-8 there).
fn meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes[..bytes.len().min(1024)].to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = find(&head[from..], b"<meta") {
        let start = from + i + 5;
        let end = head[start..].iter().position(|&b| b == b'>').map_or(head.len(), |p| start + p);
        if let Some(enc) = charset_attr(&head[start..end]).and_then(Encoding::for_label) {
            return Some(enc.output_encoding());
        }
        from = end;
    }
    None
}

/// The value after `charset=` in a meta tag's (lower-cased) attributes.
fn charset_attr(tag: &[u8]) -> Option<&[u8]> {
    let rest = tag[find(tag, b"charset")? + 7..].trim_ascii_start();
    let rest = rest.strip_prefix(b"=")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"").or_else(|| rest.strip_prefix(b"'")).unwrap_or(rest);
    let end = rest.iter().position(|b| b"\"'; \t\r\n/".contains(b)).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Decodes with a declared charset unless the bytes contradict it: valid UTF-8 with non-ASCII
/// characters is UTF-8 whatever the meta says (a lying label is the usual case), and a
/// declared charset that needs replacement characters is wrong, so detection decides.
fn decode_declared(bytes: &[u8], declared: &'static Encoding) -> Option<String> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.is_ascii() {
            return Some(s.to_owned());
        }
    }
    let (text, had_errors) = declared.decode_without_bom_handling(bytes);
    (!had_errors).then(|| text.into_owned())
}

/// Invalid UTF-8 that is still mostly UTF-8: at least as many valid multi-byte characters as
/// invalid sequences. That is damaged UTF-8, not a legacy encoding, whose text only makes a
/// valid multi-byte sequence here and there by accident (Shift_JIS does so often).
fn mostly_utf8(bytes: &[u8]) -> bool {
    let (mut multi, mut invalid) = (0, 0);
    for chunk in bytes.utf8_chunks() {
        multi += chunk.valid().chars().filter(|c| c.len_utf8() > 1).count();
        invalid += usize::from(!chunk.invalid().is_empty());
    }
    multi > 0 && multi >= invalid
}

fn invalid_utf8(offset: usize) -> DocError {
    DocError::new(ErrorKind::InvalidEncoding, format!("text is not valid UTF-8 (invalid byte at offset {offset})"))
        .with_hint("the text is UTF-8 with damaged bytes (or mixes encodings); repair it, e.g. `iconv -f UTF-8 -t UTF-8 -c` drops invalid bytes")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office(name: &str) -> Vec<u8> {
        crate::parse::shared_file(&format!("corpus/office/{name}"))
    }

    fn utf16(text: &str, le: bool) -> Vec<u8> {
        text.encode_utf16().flat_map(|u| if le { u.to_le_bytes() } else { u.to_be_bytes() }).collect()
    }

    #[test]
    fn charset_utf16_and_utf32_with_and_without_bom() {
        let text = "Grüße, 世界\n";
        for le in [true, false] {
            let bom: &[u8] = if le { b"\xFF\xFE" } else { b"\xFE\xFF" };
            assert_eq!(decode_text(&[bom, &utf16(text, le)].concat()).unwrap(), text);
            let plain = utf16("Plain ASCII text, mostly.\n", le);
            assert!(is_utf16_or_32(&plain));
            assert_eq!(decode_text(&plain).unwrap(), "Plain ASCII text, mostly.\n");
        }
        let utf32: Vec<u8> = b"\xFF\xFE\0\0".iter().copied().chain("hé".chars().flat_map(|c| (c as u32).to_le_bytes())).collect();
        assert_eq!(decode_text(&utf32).unwrap(), "hé");
        assert_eq!(decode_text(b"\xEF\xBB\xBFhi").unwrap(), "hi");
        assert_eq!(decode_text(b"\xFF\xFEh\0\0\xD8").unwrap_err().kind, ErrorKind::InvalidEncoding);
        assert!(!is_utf16_or_32(&[0x13, 0x00, 0x9c, 0xff, 0x01, 0x02]));
    }

    #[test]
    fn charset_legacy_text_is_detected() {
        assert_eq!(decode_text(b"caf\xe9 cr\xe8me").unwrap(), "café crème");
        let czech = "Příliš žluťoučký kůň úpěl ďábelské ódy. Svitky od Mrtvého moře jsou starověké texty.";
        let (cp1250, _, _) = encoding_rs::WINDOWS_1250.encode(czech);
        assert_eq!(decode_text(&cp1250).unwrap(), czech);
        // Shift_JIS makes valid UTF-8 sequences by accident; it must not be taken for damaged UTF-8.
        let japanese = "太平洋戦争を前に、日本やドイツ政府の政治、軍事の機密情報をソ連に伝えたゾルゲ事件で、死刑となった。";
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(japanese);
        assert_eq!(decode_text(&sjis).unwrap(), japanese);
    }

    #[test]
    fn charset_damaged_utf8_is_an_error() {
        let err = decode_text(b"caf\xc3\xa9 cr\xe8me").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidEncoding);
        assert_eq!(err.message, "text is not valid UTF-8 (invalid byte at offset 8)");
        assert!(err.hint.is_some());
    }

    #[test]
    fn charset_html_meta_is_honoured_unless_it_lies() {
        let arabic = decode_text(&office("tika__testHTMLNoisyMetaEncoding_1.html")).unwrap();
        assert!(arabic.contains("الاتحاد الجزائري"), "{arabic}");
        let lying = "<html><head><meta charset=\"iso-8859-1\"></head><body>Grüße aus Köln</body></html>";
        assert_eq!(decode_text(lying.as_bytes()).unwrap(), lying);
        let honest = b"<meta http-equiv=Content-Type content='text/html; charset=windows-1251'><p>\xcf\xf0\xe8\xe2\xe5\xf2</p>";
        assert!(decode_text(honest).unwrap().contains("Привет"));
        // A label whose charset cannot decode the bytes loses to detection.
        let wrong = b"<meta charset=utf-8><p>caf\xe9 cr\xe8me</p>";
        assert!(decode_text(wrong).unwrap().contains("café crème"));
    }

    #[test]
    fn charset_corpus_html_decodes_cleanly() {
        for (name, sample) in
            [("tika__testHTML.html", "Test Indexation Html"), ("tika__big-preamble.html", "недвижимости"), ("tika__resume.html", "Здравствуйте")]
        {
            let text = decode_text(&office(name)).unwrap();
            assert!(!text.contains('\u{FFFD}'), "{name} has replacement characters");
            assert!(text.contains(sample), "{name} lacks {sample}");
        }
    }

    #[test]
    fn charset_decode_with_label() {
        assert_eq!(decode_with_label(b"\x8a\xbf", "windows-1250").as_deref(), Some("Šż"));
        assert_eq!(decode_with_label(b"\x82\xb1\x82\xf1", "shift_jis").as_deref(), Some("こん"));
        assert_eq!(decode_with_label(b"x", "no-such-charset"), None);
    }
}
