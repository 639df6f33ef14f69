//! pdf-extract follows `Do` into Form XObjects recursively without a depth limit or cycle
//! check, so a form that (directly or through others) draws itself would recurse until the
//! stack overflows and the process aborts. Before extraction, every form gets explicit
//! resources and every XObject reference that closes a cycle, or nests deeper than
//! `MAX_DEPTH`, is removed.
use lopdf::{Dictionary, Document, Object, ObjectId};
use std::collections::HashMap;

const MAX_DEPTH: usize = 32;

pub fn break_xobject_cycles(doc: &mut Document) {
    let forms: Vec<ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, o)| o.as_stream().is_ok_and(|s| s.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Form")))
        .map(|(id, _)| *id)
        .collect();
    // A form without /Resources draws with its caller's, through which it can reach itself.
    for id in &forms {
        if let Ok(Object::Stream(s)) = doc.get_object_mut(*id) {
            if !s.dict.has(b"Resources") {
                s.dict.set("Resources", Dictionary::new());
            }
        }
    }
    let edges: HashMap<ObjectId, Vec<(Vec<u8>, ObjectId)>> = forms.iter().map(|&id| (id, form_children(doc, id, &forms))).collect();
    let mut cut: Vec<(ObjectId, Vec<u8>)> = Vec::new();
    let mut state: HashMap<ObjectId, u8> = HashMap::new(); // 1 = on the current path, 2 = done
    for &root in &forms {
        if state.contains_key(&root) {
            continue;
        }
        // Iterative DFS: (form, index of next child).
        let mut stack = vec![(root, 0usize)];
        state.insert(root, 1);
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let children = &edges[&node];
            if *next == children.len() {
                state.insert(node, 2);
                stack.pop();
                continue;
            }
            let (name, child) = children[*next].clone();
            *next += 1;
            match state.get(&child) {
                Some(1) => cut.push((node, name)),
                None if stack.len() >= MAX_DEPTH => cut.push((node, name)),
                None => {
                    state.insert(child, 1);
                    stack.push((child, 0));
                }
                _ => {}
            }
        }
    }
    for (form, name) in cut {
        if let Some(xobjects) = xobject_dict_id(doc, form) {
            remove_entry(doc, xobjects, &name);
        }
    }
}

/// Where a form's /Resources /XObject dictionary lives: inline in the stream or indirect.
enum XObjects {
    Inline(ObjectId),
    Indirect(ObjectId),
    InlineResourcesIndirectXObject(ObjectId),
}

fn xobject_dict_id(doc: &Document, form: ObjectId) -> Option<XObjects> {
    let dict = &doc.get_object(form).ok()?.as_stream().ok()?.dict;
    match dict.get(b"Resources").ok()? {
        Object::Reference(res) => match doc.get_dictionary(*res).ok()?.get(b"XObject").ok()? {
            Object::Reference(x) => Some(XObjects::Indirect(*x)),
            _ => Some(XObjects::InlineResourcesIndirectXObject(*res)),
        },
        Object::Dictionary(res) => match res.get(b"XObject").ok()? {
            Object::Reference(x) => Some(XObjects::Indirect(*x)),
            _ => Some(XObjects::Inline(form)),
        },
        _ => None,
    }
}

fn remove_entry(doc: &mut Document, at: XObjects, name: &[u8]) {
    let dict: Option<&mut Dictionary> = match at {
        XObjects::Indirect(id) => doc.get_object_mut(id).ok().and_then(|o| o.as_dict_mut().ok()),
        XObjects::InlineResourcesIndirectXObject(res) => doc
            .get_object_mut(res)
            .ok()
            .and_then(|o| o.as_dict_mut().ok())
            .and_then(|r| r.get_mut(b"XObject").ok())
            .and_then(|x| x.as_dict_mut().ok()),
        XObjects::Inline(form) => doc
            .get_object_mut(form)
            .ok()
            .and_then(|o| o.as_stream_mut().ok())
            .and_then(|s| s.dict.get_mut(b"Resources").ok())
            .and_then(|r| r.as_dict_mut().ok())
            .and_then(|r| r.get_mut(b"XObject").ok())
            .and_then(|x| x.as_dict_mut().ok()),
    };
    if let Some(d) = dict {
        d.remove(name);
    }
}

/// The forms a form's own resources name, with the names they are drawn by.
fn form_children(doc: &Document, form: ObjectId, forms: &[ObjectId]) -> Vec<(Vec<u8>, ObjectId)> {
    let deref = |o: &Object| -> Option<Dictionary> {
        match o {
            Object::Reference(id) => doc.get_dictionary(*id).ok().cloned(),
            other => other.as_dict().ok().cloned(),
        }
    };
    let Some(resources) = doc.get_object(form).ok().and_then(|o| o.as_stream().ok()).and_then(|s| s.dict.get(b"Resources").ok()).and_then(deref)
    else {
        return Vec::new();
    };
    let Some(xobjects) = resources.get(b"XObject").ok().and_then(deref) else { return Vec::new() };
    xobjects.iter().filter_map(|(name, obj)| obj.as_reference().ok().filter(|id| forms.contains(id)).map(|id| (name.clone(), id))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::{dictionary, Stream};

    #[test]
    fn self_drawing_forms_are_cut() {
        let mut doc = Document::with_version("1.5");
        let a_id = doc.new_object_id();
        let b_id = doc.new_object_id();
        let form = |other: ObjectId| {
            Stream::new(
                dictionary! { "Type" => "XObject", "Subtype" => "Form", "Resources" => dictionary! { "XObject" => dictionary! { "X" => other } } },
                b"/X Do".to_vec(),
            )
        };
        doc.objects.insert(a_id, Object::Stream(form(b_id)));
        doc.objects.insert(b_id, Object::Stream(form(a_id)));
        let bare = doc.add_object(Stream::new(dictionary! { "Type" => "XObject", "Subtype" => "Form" }, vec![]));
        break_xobject_cycles(&mut doc);
        let remaining: usize = [a_id, b_id].iter().map(|&id| form_children(&doc, id, &[a_id, b_id]).len()).sum();
        assert_eq!(remaining, 1, "exactly one edge of the A→B→A cycle is removed");
        assert!(doc.get_object(bare).unwrap().as_stream().unwrap().dict.has(b"Resources"));
    }
}
