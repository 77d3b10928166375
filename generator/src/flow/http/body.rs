//! Request bodies: text (a template; a YAML/JSON object is sent as JSON),
//! an HTML form (`form: {user: "{{vu}}"}`, URL-encoded when sent, so a
//! captured value with `&` or `=` stays one field), or `multipart/form-data`
//! (`multipart: {field: value, upload: "@path/to/file"}`; files are read
//! when the scenario is loaded, at most [`MAX_FILE_BYTES`] each).

use crate::flow::template::{Template, Vars};
use crate::flow::IterCtx;
use bytes::Bytes;

/// Largest file a multipart body may carry.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// A request body.
#[derive(Debug)]
pub enum Body {
    /// Sent as rendered.
    Text(Template),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, Template)>),
    /// `multipart/form-data` with this boundary.
    Multipart(String, Vec<(String, Part)>),
}

/// One part of a multipart body.
#[derive(Debug)]
pub enum Part {
    /// A text field.
    Field(Template),
    /// A file read at load time: its name and contents.
    File(String, Bytes),
}

impl Body {
    /// The templates it renders.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Body::Text(t) => vec![t],
            Body::Form(fields) => fields.iter().map(|(_, t)| t).collect(),
            Body::Multipart(_, parts) => {
                parts.iter().filter_map(|(_, p)| if let Part::Field(t) = p { Some(t) } else { None }).collect()
            }
        }
    }

    /// The `Content-Type` it implies (none for text).
    pub fn content_type(&self) -> Option<String> {
        match self {
            Body::Text(_) => None,
            Body::Form(_) => Some("application/x-www-form-urlencoded".into()),
            Body::Multipart(boundary, _) => Some(format!("multipart/form-data; boundary={boundary}")),
        }
    }

    /// The bytes for one request.
    pub fn render<V: Vars + ?Sized>(&self, ctx: &IterCtx<'_>, vars: &V) -> Bytes {
        let text = |t: &Template| {
            let mut out = String::new();
            t.render_with(ctx, vars, &mut out);
            out
        };
        match self {
            Body::Text(t) => Bytes::from(text(t)),
            Body::Form(fields) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (k, t) in fields {
                    form.append_pair(k, &text(t));
                }
                Bytes::from(form.finish())
            }
            Body::Multipart(boundary, parts) => {
                let mut out = Vec::new();
                for (name, part) in parts {
                    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                    match part {
                        Part::Field(t) => {
                            let head = format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n");
                            out.extend_from_slice(head.as_bytes());
                            out.extend_from_slice(text(t).as_bytes());
                        }
                        Part::File(file, bytes) => {
                            let head = format!(
                                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                            );
                            out.extend_from_slice(head.as_bytes());
                            out.extend_from_slice(bytes);
                        }
                    }
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
                Bytes::from(out)
            }
        }
    }
}

/// A multipart file part from `@path`: read now, bounded, named by its
/// file name.
pub fn read_file(path: &std::path::Path) -> Result<Part, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("{path:?} has {} bytes; a multipart file may have at most {MAX_FILE_BYTES}", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let name = path.file_name().map_or("file".into(), |n| n.to_string_lossy().replace('"', "'"));
    Ok(Part::File(name, Bytes::from(bytes)))
}

/// A boundary no rendered value is likely to contain.
pub fn boundary() -> String {
    format!("volley-{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn forms_are_encoded_per_request_and_multipart_carries_files() {
        let env = HashMap::new();
        let ctx = IterCtx { vu: 7, iter: 0, scenario: "s", env: &env, stopping: None, tokens: &[] };
        let form = Body::Form(vec![
            ("user".into(), Template::parse("u{{vu}}").unwrap()),
            ("note".into(), Template::parse_with("{{x}}", &["x"]).unwrap()),
        ]);
        assert_eq!(form.render(&ctx, &["a&b=c d".to_string()]), Bytes::from("user=u7&note=a%26b%3Dc+d"));
        assert_eq!(form.content_type().unwrap(), "application/x-www-form-urlencoded");
        let dir = std::env::temp_dir().join(format!("volley-body-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pic.bin");
        std::fs::write(&file, b"\x00\x01binary").unwrap();
        let parts = vec![
            ("title".into(), Part::Field(Template::parse("hello {{vu}}").unwrap())),
            ("upload".into(), read_file(&file).unwrap()),
        ];
        let body = Body::Multipart("B".into(), parts).render(&ctx, &[] as &[&str]);
        let want = b"--B\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello 7\r\n--B\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"pic.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01binary\r\n--B--\r\n";
        assert_eq!(&body[..], &want[..]);
        assert!(read_file(std::path::Path::new("/nonexistent/x")).unwrap_err().contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
