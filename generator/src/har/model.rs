//! The parts of a HAR 1.2 file (a browser's network recording) the import
//! reads. Every field is optional on read: recorders differ, and a missing
//! field is handled where it is used, not by refusing the file.

use serde::Deserialize;

/// The document.
#[derive(Debug, Default, Deserialize)]
pub struct Har {
    /// The log.
    #[serde(default)]
    pub log: Log,
}

/// `log`.
#[derive(Debug, Default, Deserialize)]
pub struct Log {
    /// Pages, in order.
    #[serde(default)]
    pub pages: Vec<Page>,
    /// Requests, in order.
    #[serde(default)]
    pub entries: Vec<Entry>,
}

/// A page (its requests become a group).
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    /// Its id (`pageref` of entries).
    #[serde(default)]
    pub id: String,
    /// Its title.
    #[serde(default)]
    pub title: String,
}

/// One request and its response.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The page it belongs to.
    #[serde(default)]
    pub pageref: Option<String>,
    /// When it started (ISO 8601).
    #[serde(default)]
    pub started_date_time: String,
    /// How long it took, in milliseconds.
    #[serde(default)]
    pub time: f64,
    /// The request.
    #[serde(default)]
    pub request: Request,
    /// The response.
    #[serde(default)]
    pub response: Response,
    /// Chrome's resource type (`document`, `xhr`, `image`, …).
    #[serde(default, rename = "_resourceType")]
    pub resource_type: Option<String>,
}

/// `request`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Method.
    #[serde(default)]
    pub method: String,
    /// Absolute URL.
    #[serde(default)]
    pub url: String,
    /// Headers as sent.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// The body.
    #[serde(default)]
    pub post_data: Option<PostData>,
}

/// `postData`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostData {
    /// Its type.
    #[serde(default)]
    pub mime_type: String,
    /// The body as text.
    #[serde(default)]
    pub text: Option<String>,
    /// Form fields (when the recorder split them out).
    #[serde(default)]
    pub params: Vec<NameValue>,
}

/// `response`.
#[derive(Debug, Default, Deserialize)]
pub struct Response {
    /// Status code.
    #[serde(default)]
    pub status: u16,
    /// Headers.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// The body's description.
    #[serde(default)]
    pub content: Content,
}

/// `response.content`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// Its type.
    #[serde(default)]
    pub mime_type: String,
}

/// A header, query or form field.
#[derive(Debug, Default, Deserialize)]
pub struct NameValue {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}
