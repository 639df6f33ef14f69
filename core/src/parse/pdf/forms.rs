//! AcroForm field values: what a filled-in form says is often the point of the document, and
//! it lives in annotations, not in the page's text layer.
use lopdf::{Dictionary, Document, Object, ObjectId};
use std::collections::HashMap;

/// "Field name: value" lines per page object, in annotation order.
pub fn field_values_by_page(doc: &Document) -> HashMap<ObjectId, Vec<String>> {
    let mut out: HashMap<ObjectId, Vec<String>> = HashMap::new();
    for page_id in doc.page_iter() {
        let Ok(page) = doc.get_dictionary(page_id) else { continue };
        let Ok(annots) = page.get_deref(b"Annots", doc).and_then(Object::as_array) else { continue };
        for annot in annots {
            let Ok(dict) = deref_dict(doc, annot) else { continue };
            if dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Widget") {
                continue;
            }
            if let Some(line) = field_line(doc, dict) {
                out.entry(page_id).or_default().push(line);
            }
        }
    }
    out
}

fn deref_dict<'a>(doc: &'a Document, obj: &'a Object) -> lopdf::Result<&'a Dictionary> {
    match obj {
        Object::Reference(id) => doc.get_dictionary(*id),
        other => other.as_dict(),
    }
}

/// The widget's field: its value (inherited from /Parent like its name), skipping empty and
/// unchecked ("Off") values.
fn field_line(doc: &Document, widget: &Dictionary) -> Option<String> {
    let mut names = Vec::new();
    let mut value = None;
    let mut node = Some(widget);
    // Field trees are shallow; the bound stops /Parent cycles.
    for _ in 0..32 {
        let Some(dict) = node else { break };
        if let Ok(t) = dict.get(b"T").and_then(Object::as_str) {
            names.push(text(t));
        }
        if value.is_none() {
            value = dict.get(b"V").ok().and_then(|v| value_text(doc, v));
        }
        node = dict.get(b"Parent").ok().and_then(|p| deref_dict(doc, p).ok());
    }
    let value = value.filter(|v| !v.trim().is_empty() && v != "Off")?;
    names.reverse();
    let name = names.join(".");
    Some(if name.is_empty() { value } else { format!("{name}: {value}") })
}

fn value_text(doc: &Document, v: &Object) -> Option<String> {
    match v {
        Object::String(bytes, _) => Some(text(bytes)),
        Object::Name(n) => Some(String::from_utf8_lossy(n).into_owned()),
        Object::Array(items) => Some(items.iter().filter_map(|i| value_text(doc, i)).collect::<Vec<_>>().join(", ")),
        Object::Reference(id) => doc.get_object(*id).ok().filter(|o| !matches!(o, Object::Reference(_))).and_then(|o| value_text(doc, o)),
        _ => None,
    }
}

/// PDF text strings are UTF-16BE with a BOM or PDFDocEncoding (close enough to Latin-1 here).
fn text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        String::from_utf16_lossy(&units)
    } else if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        bytes.iter().map(|&b| b as char).collect()
    }
}
