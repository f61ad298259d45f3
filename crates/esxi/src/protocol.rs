//! The ESXi wrapper wire format, and the only code that knows it: the esxcli-style XML envelope
//! (`status`, `message`), the JSON task documents carried in `message`, the operation names, the
//! SSH command line (direct form and the upstream `DS=<ds>;CMD=<op>` framing) and progress parsing.
//!
//! Both wrappers (the VIB's shell script and the SSH Python script) and every populator, old and
//! new, exchange exactly these shapes, so they are pinned by tests. No I/O happens here: the lab
//! uses this module to play the wrapper in-process.

use serde::{Deserialize, Deserializer, Serialize};

/// XML namespace of the esxcli output envelope.
pub const ESXCLI_OUTPUT_NAMESPACE: &str = "http://www.vmware.com/Products/ESX/5.0/esxcli/";

/// Reply of the legacy connectivity probe (`DS=;CMD=…`) and of `--probe`.
pub const PROBE_REPLY: &str = "SSH_OK";

/// First wrapper version whose clone operation accepts a client-chosen task id (`-i <uuid>`)
/// and answers a repeated start with that id with the task already running.
pub const CLIENT_TASK_ID_VERSION: (u32, u32, u32) = (1, 1, 0);

/// First VIB wrapper version that decodes [`encode_esxcli_value`] values. The esxcli plugin
/// places values in its `<execute>` line, which the host's plugin runner may hand to a shell;
/// an encoded value consists of shell-inert characters only, so no value the populator sends
/// depends on quoting for its safety.
pub const ENCODED_VALUES_VERSION: (u32, u32, u32) = (1, 2, 0);

/// Prefix of an encoded esxcli value: `hex:` and the lowercase hex of the value's UTF-8 bytes.
pub const ENCODED_VALUE_PREFIX: &str = "hex:";

/// Longest source VMDK path (UTF-8 bytes) a populator sends and the wrappers accept. vSphere
/// bounds a datastore name to 42 characters, a VM folder to 80 and a file name to 255 bytes, so
/// every real disk fits; the bound keeps each wrapper's work on one request small and linear.
pub const MAX_PATH_BYTES: usize = 1024;

/// Longest single name — a datastore, or a device (`naa.…`, `eui.…`, `t10.…`, `mpx.…`) — the
/// client sends and the wrappers accept.
pub const MAX_NAME_BYTES: usize = 255;

/// Whether a wrapper reporting `version` accepts a client-chosen clone task id. A version that
/// is not `major.minor.patch` (an unknown or foreign script) does not: it must never receive the
/// argument.
pub fn accepts_client_task_id(version: &str) -> bool {
    version_at_least(version, CLIENT_TASK_ID_VERSION)
}

/// Whether a VIB wrapper reporting `version` decodes encoded esxcli values.
pub fn accepts_encoded_values(version: &str) -> bool {
    version_at_least(version, ENCODED_VALUES_VERSION)
}

fn version_at_least(version: &str, wanted: (u32, u32, u32)) -> bool {
    let mut parts = version.trim().split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) => {
            (major, minor, patch) >= wanted
        }
        _ => false,
    }
}

/// Whether `id` has the one task id form both wrappers accept: a lowercase, hyphenated UUID.
pub fn is_task_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_digit() || (b'a'..=b'f').contains(byte),
        })
}

/// A clone task id in the one form both wrappers accept (a lowercase, hyphenated UUID), checked
/// when it is made. Task ids come back from journals that anyone allowed to edit the copy's
/// objects can change, so every executor operation takes its id through [`TaskId::parse`]:
/// nothing else reaches a host. Serialised as the plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

/// A text that is not a wrapper task id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a clone task id (a lowercase hyphenated UUID such as \
     5d0f3c9e-2b7a-4c61-9e8d-0a1b2c3d4e5f); a journal entry carrying it was altered or corrupted"
)]
pub struct InvalidTaskId {
    /// The refused text, cut to 64 characters: it may be arbitrarily long.
    pub value: String,
}

impl TaskId {
    pub fn parse(text: &str) -> Result<Self, InvalidTaskId> {
        if is_task_id(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidTaskId {
                value: text.chars().take(64).collect(),
            })
        }
    }

    /// A fresh random (version 4) id.
    pub fn random() -> Self {
        let mut bytes: [u8; 16] = rand::random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex = hex::encode(bytes);
        Self(format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TaskId {
    type Err = InvalidTaskId;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for TaskId {
    type Error = InvalidTaskId;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> String {
        id.0
    }
}

impl AsRef<str> for TaskId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Whether both wrappers accept `c` inside a path: everything printable, Unicode spaces
/// included (vSphere allows U+00A0 and U+3000 in names), but no control characters, line or
/// paragraph separators, and no invisible formatting characters (bidirectional overrides, zero
/// widths) that would make a log line or a reply show another path than the one used.
pub fn is_path_char(c: char) -> bool {
    !(c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        ))
}

/// The VIB form of a value: [`ENCODED_VALUE_PREFIX`] and the lowercase hex of its UTF-8 bytes.
pub fn encode_esxcli_value(value: &str) -> String {
    format!("{ENCODED_VALUE_PREFIX}{}", hex::encode(value.as_bytes()))
}

/// The value an esxcli argument carries: an encoded value decoded, anything else as given (the
/// plain form older populators send).
pub fn decode_esxcli_value(value: &str) -> Result<String, ProtocolError> {
    let Some(encoded) = value.strip_prefix(ENCODED_VALUE_PREFIX) else {
        return Ok(value.to_owned());
    };
    let invalid = || ProtocolError::InvalidEncoding(value.chars().take(80).collect());
    if encoded.len() > 2 * MAX_PATH_BYTES
        || encoded
            .bytes()
            .any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(invalid());
    }
    let bytes = hex::decode(encoded).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// Errors decoding what a wrapper sent back, or a request a wrapper must refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error(
        "the ESXi wrapper reply is not the expected XML envelope ({reason}); got: {excerpt:?}. \
         The wrapper on the host may be an old or foreign script: reinstall it"
    )]
    MalformedEnvelope { reason: String, excerpt: String },
    #[error("the ESXi wrapper reply has no `{0}` field")]
    MissingField(&'static str),
    #[error("the ESXi wrapper returned an unreadable JSON document ({reason}): {message:?}")]
    MalformedJson { reason: String, message: String },
    #[error("unsupported wrapper command: {0}")]
    UnsupportedCommand(String),
    #[error("wrapper command quoting is invalid: {0}")]
    InvalidQuoting(&'static str),
    #[error("esxcli value {0:?} is not `hex:` and the lowercase hex of a UTF-8 text")]
    InvalidEncoding(String),
}

/// The envelope every wrapper operation prints: a numeric status (0 = success) and a message
/// that is either a JSON document, plain text, or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperReply {
    pub status: i32,
    pub message: String,
}

impl WrapperReply {
    pub fn ok(message: impl Into<String>) -> Self {
        Self {
            status: 0,
            message: message.into(),
        }
    }

    pub fn failed(status: i32, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn is_success(&self) -> bool {
        self.status == 0
    }

    /// The envelope as the wrappers print it (message escaped, so any JSON is well-formed XML).
    pub fn to_xml(&self) -> String {
        format!(
            "<?xml version=\"1.0\" ?>\n<output xmlns=\"{ESXCLI_OUTPUT_NAMESPACE}\">\n    \
             <structure typeName=\"result\">\n        \
             <field name=\"status\"><string>{}</string></field>\n        \
             <field name=\"message\"><string>{}</string></field>\n    \
             </structure>\n</output>\n",
            self.status,
            quick_xml::escape::escape(self.message.as_str())
        )
    }

    /// Parses an envelope. Text around the XML (an SSH banner, a stray log line) is ignored.
    pub fn from_xml(text: &str) -> Result<Self, ProtocolError> {
        use quick_xml::events::Event;

        let malformed = |reason: String| ProtocolError::MalformedEnvelope {
            reason,
            excerpt: text.chars().take(200).collect(),
        };
        let start = text
            .find("<?xml")
            .or_else(|| text.find("<output"))
            .ok_or_else(|| malformed("no XML document".into()))?;
        let mut reader = quick_xml::Reader::from_str(&text[start..]);
        let mut field: Option<String> = None;
        let mut in_string = false;
        let mut status: Option<String> = None;
        let mut message: Option<String> = None;
        loop {
            match reader
                .read_event()
                .map_err(|err| malformed(err.to_string()))?
            {
                Event::Start(tag) if tag.local_name().as_ref() == "field" => {
                    field = tag
                        .try_get_attribute("name")
                        .map_err(|err| malformed(err.to_string()))?
                        .map(|attr| attr.value.into_owned());
                }
                Event::End(tag) if tag.local_name().as_ref() == "field" => field = None,
                Event::Start(tag) if tag.local_name().as_ref() == "string" => {
                    in_string = true;
                    let slot = match field.as_deref() {
                        Some("status") => &mut status,
                        Some("message") => &mut message,
                        _ => continue,
                    };
                    slot.get_or_insert_with(String::new);
                }
                Event::Empty(tag) if tag.local_name().as_ref() == "string" => {
                    match field.as_deref() {
                        Some("status") => status.get_or_insert_with(String::new),
                        Some("message") => message.get_or_insert_with(String::new),
                        _ => continue,
                    };
                }
                Event::End(tag) if tag.local_name().as_ref() == "string" => in_string = false,
                Event::Text(content) if in_string => {
                    let decoded = content.xml10_content();
                    append_field(field.as_deref(), &mut status, &mut message, &decoded);
                }
                Event::GeneralRef(reference) if in_string => {
                    let name: &str = &reference;
                    let resolved = quick_xml::escape::unescape(&format!("&{name};"))
                        .map_err(|err| malformed(err.to_string()))?
                        .into_owned();
                    append_field(field.as_deref(), &mut status, &mut message, &resolved);
                }
                Event::CData(content) if in_string => {
                    let decoded = content.xml10_content().into_owned();
                    append_field(field.as_deref(), &mut status, &mut message, &decoded);
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let status = status.ok_or(ProtocolError::MissingField("status"))?;
        let message = message.ok_or(ProtocolError::MissingField("message"))?;
        let status = status
            .trim()
            .parse()
            .map_err(|_| malformed(format!("status {status:?} is not a number")))?;
        Ok(Self { status, message })
    }
}

fn append_field(
    field: Option<&str>,
    status: &mut Option<String>,
    message: &mut Option<String>,
    text: &str,
) {
    match field {
        Some("status") => status.get_or_insert_with(String::new).push_str(text),
        Some("message") => message.get_or_insert_with(String::new).push_str(text),
        _ => {}
    }
}

/// `message` of a successful clone start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloneStarted {
    pub task_id: String,
    pub pid: i64,
    #[serde(default, deserialize_with = "null_as_false")]
    pub xcopy_used: bool,
}

/// `message` of task-get and task-abort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    #[serde(default)]
    pub task_id: String,
    #[serde(default)]
    pub pid: i64,
    /// `None` while the clone runs (the wire carries `""`).
    #[serde(default, with = "exit_code_text")]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub last_line: String,
    /// `None` when the host cannot tell (no VAAI statistics for the device).
    #[serde(default)]
    pub xcopy_used: Option<bool>,
    #[serde(default)]
    pub std_err: String,
}

impl TaskStatus {
    pub fn is_finished(&self) -> bool {
        self.exit_code.is_some()
    }

    pub fn progress_percent(&self) -> Option<u8> {
        progress_percent(&self.last_line)
    }
}

/// `message` of the version operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: String,
}

fn null_as_false<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}

mod exit_code_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(code: &Option<i32>, serializer: S) -> Result<S::Ok, S::Error> {
        match code {
            Some(code) => serializer.serialize_str(&code.to_string()),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i32>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Number(i32),
            Null(()),
        }
        match Wire::deserialize(deserializer)? {
            Wire::Text(text) if text.trim().is_empty() => Ok(None),
            Wire::Text(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("exitCode {text:?} is not a number"))),
            Wire::Number(code) => Ok(Some(code)),
            Wire::Null(()) => Ok(None),
        }
    }
}

/// Decodes the JSON document in a reply's message.
pub fn decode_message<T: serde::de::DeserializeOwned>(message: &str) -> Result<T, ProtocolError> {
    serde_json::from_str(message).map_err(|err| ProtocolError::MalformedJson {
        reason: err.to_string(),
        message: message.chars().take(500).collect(),
    })
}

/// Encodes a JSON document for a reply's message.
pub fn encode_message<T: Serialize>(document: &T) -> String {
    // Serialising these plain structs cannot fail.
    serde_json::to_string(document).unwrap_or_default()
}

/// The percentage in a vmkfstools progress line such as `Clone: 45% done.`: the last `NN%` whose
/// value is 0–100. Anything else is `None`, never a sentinel value.
pub fn progress_percent(last_line: &str) -> Option<u8> {
    let bytes = last_line.as_bytes();
    let mut found = None;
    for (index, byte) in bytes.iter().enumerate() {
        if *byte != b'%' {
            continue;
        }
        let digits_start = bytes[..index]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |position| position + 1);
        let digits = &last_line[digits_start..index];
        let negative = digits_start > 0 && bytes[digits_start - 1] == b'-';
        if !negative
            && (1..=3).contains(&digits.len())
            && let Ok(value) = digits.parse::<u8>()
            && value <= 100
        {
            found = Some(value);
        }
    }
    found
}

/// One wrapper operation, as typed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrapperCommand {
    Probe,
    Version,
    Clone {
        source_vmdk: String,
        target_device: String,
        /// Client-chosen task id (wrapper 1.1.0 and later); `None` lets the wrapper choose, and
        /// keeps the command byte-identical to what older wrappers accept.
        task_id: Option<String>,
    },
    TaskGet {
        task_id: String,
    },
    TaskAbort {
        task_id: String,
    },
    TaskClean {
        task_id: String,
    },
}

impl WrapperCommand {
    /// The operation's name as the wrappers' options spell it (`task-get`), used in errors, logs
    /// and the lab's fault sites (`ssh:<operation>`).
    pub fn operation(&self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Version => "version",
            Self::Clone { .. } => "clone",
            Self::TaskGet { .. } => "task-get",
            Self::TaskAbort { .. } => "task-abort",
            Self::TaskClean { .. } => "task-clean",
        }
    }

    /// The esxcli command of the VIB's `vmkfstools` namespace that runs the operation (`taskGet`).
    pub fn esxcli_command(&self) -> &'static str {
        match self {
            Self::Probe | Self::Version => "version",
            Self::Clone { .. } => "clone",
            Self::TaskGet { .. } => "taskGet",
            Self::TaskAbort { .. } => "taskAbort",
            Self::TaskClean { .. } => "taskClean",
        }
    }

    /// Wrapper argv (`--clone -s <src> -t <dev>`, …), shared by both wrappers.
    pub fn wrapper_args(&self) -> Vec<&str> {
        match self {
            Self::Probe => vec!["--probe"],
            Self::Version => vec!["--version"],
            Self::Clone {
                source_vmdk,
                target_device,
                task_id,
            } => {
                let mut args = vec!["--clone", "-s", source_vmdk, "-t", target_device];
                if let Some(task_id) = task_id {
                    args.extend(["-i", task_id]);
                }
                args
            }
            Self::TaskGet { task_id } => vec!["--task-get", "-i", task_id],
            Self::TaskAbort { task_id } => vec!["--task-abort", "-i", task_id],
            Self::TaskClean { task_id } => vec!["--task-clean", "-i", task_id],
        }
    }

    /// esxcli argv for the VIB's `vmkfstools` namespace.
    pub fn esxcli_args(&self) -> Vec<&str> {
        let mut args = vec!["vmkfstools", self.esxcli_command()];
        match self {
            Self::Probe | Self::Version => {}
            Self::Clone {
                source_vmdk,
                target_device,
                task_id,
            } => {
                args.extend(["-s", source_vmdk, "-t", target_device]);
                if let Some(task_id) = task_id {
                    args.extend(["-i", task_id]);
                }
            }
            Self::TaskGet { task_id }
            | Self::TaskAbort { task_id }
            | Self::TaskClean { task_id } => {
                args.extend(["-i", task_id]);
            }
        }
        args
    }

    /// esxcli argv for a VIB wrapper from [`ENCODED_VALUES_VERSION`] on: every value encoded
    /// ([`encode_esxcli_value`]), so the `<execute>` line carries no character a shell treats
    /// specially whatever the path contains.
    pub fn esxcli_args_encoded(&self) -> Vec<String> {
        let plain = self.esxcli_args();
        let mut args: Vec<String> = plain[..2].iter().map(|word| (*word).to_owned()).collect();
        for pair in plain[2..].chunks(2) {
            if let [option, value] = pair {
                args.push((*option).to_owned());
                args.push(encode_esxcli_value(value));
            }
        }
        args
    }

    /// This command with every esxcli value decoded ([`decode_esxcli_value`]).
    pub fn decode_esxcli_values(self) -> Result<Self, ProtocolError> {
        Ok(match self {
            Self::Probe => Self::Probe,
            Self::Version => Self::Version,
            Self::Clone {
                source_vmdk,
                target_device,
                task_id,
            } => Self::Clone {
                source_vmdk: decode_esxcli_value(&source_vmdk)?,
                target_device: decode_esxcli_value(&target_device)?,
                task_id: task_id.as_deref().map(decode_esxcli_value).transpose()?,
            },
            Self::TaskGet { task_id } => Self::TaskGet {
                task_id: decode_esxcli_value(&task_id)?,
            },
            Self::TaskAbort { task_id } => Self::TaskAbort {
                task_id: decode_esxcli_value(&task_id)?,
            },
            Self::TaskClean { task_id } => Self::TaskClean {
                task_id: decode_esxcli_value(&task_id)?,
            },
        })
    }

    /// The values this command carries (paths, task id), for checks before sending.
    pub fn values(&self) -> Vec<&str> {
        let args = self.esxcli_args();
        args[2..].iter().skip(1).step_by(2).copied().collect()
    }

    /// The SSH command for the seed's key line (`command="python …/secure-vmkfstools-wrapper.py"`),
    /// every word POSIX-quoted so names with spaces survive.
    pub fn to_ssh_command(&self) -> String {
        self.wrapper_args()
            .iter()
            .map(|word| shell_quote(word))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The upstream framing `DS=<datastore>;CMD=<operation>` (an empty datastore is the probe).
    pub fn to_legacy_frame(&self, datastore: &str) -> String {
        match self {
            Self::Probe => "DS=;CMD=status test-task-id".to_owned(),
            _ => format!("DS={datastore};CMD={}", self.to_ssh_command()),
        }
    }

    /// The request for a host whose key line routes `DS=<datastore>;CMD=<operation>` to the shell
    /// wrapper (Forklift's line): operation and option words as they are, every value encoded
    /// ([`encode_esxcli_value`]). The key line passes the text through `echo` and `sed`, and the
    /// wrapper splits it on spaces; encoded values hold nothing either could change.
    pub fn to_routed_request(&self, datastore: &str) -> String {
        let args = self.wrapper_args();
        let mut words: Vec<String> = args.iter().take(1).map(|w| (*w).to_owned()).collect();
        for pair in args[1..].chunks(2) {
            if let [option, value] = pair {
                words.push((*option).to_owned());
                words.push(encode_esxcli_value(value));
            }
        }
        let datastore = if *self == Self::Probe { "" } else { datastore };
        format!("DS={datastore};CMD={}", words.join(" "))
    }

    /// Parses an SSH command in either form; returns the datastore named by a legacy frame.
    /// Path validation is the wrapper's job; this only recognises the operation and its words.
    pub fn parse_ssh_command(line: &str) -> Result<(Option<String>, Self), ProtocolError> {
        let mut rest = line;
        let mut datastore = None;
        if let Some(frame) = line.strip_prefix("DS=")
            && let Some((ds, command)) = frame.split_once(";CMD=")
        {
            if ds.is_empty() {
                return Ok((None, Self::Probe));
            }
            datastore = Some(ds.to_owned());
            rest = command;
        }
        let words = split_shell_words(rest)?;
        let unsupported = || ProtocolError::UnsupportedCommand(line.chars().take(120).collect());
        let (operation, options) = words.split_first().ok_or_else(unsupported)?;
        let mut values = std::collections::BTreeMap::new();
        for pair in options.chunks(2) {
            let [option, value] = pair else {
                return Err(unsupported());
            };
            let name = match option.as_str() {
                "-s" | "--source-vmdk" => "source",
                "-t" | "--target-lun" => "target",
                "-i" | "--task-id" => "id",
                _ => return Err(unsupported()),
            };
            if values.insert(name, value.clone()).is_some() {
                return Err(unsupported());
            }
        }
        let mut take = |name| values.remove(name).ok_or_else(unsupported);
        let command = match operation.as_str() {
            "--probe" => Self::Probe,
            "--version" | "-v" => Self::Version,
            "--clone" => Self::Clone {
                source_vmdk: take("source")?,
                target_device: take("target")?,
                // Optional: older populators never send it.
                task_id: take("id").ok(),
            },
            "--task-get" => Self::TaskGet {
                task_id: take("id")?,
            },
            "--task-abort" => Self::TaskAbort {
                task_id: take("id")?,
            },
            "--task-clean" => Self::TaskClean {
                task_id: take("id")?,
            },
            _ => return Err(unsupported()),
        };
        if !values.is_empty() {
            return Err(unsupported());
        }
        Ok((datastore, command))
    }
}

/// Quotes one word for a POSIX shell (single quotes; embedded `'` as `'\''`).
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Splits a command line into words with POSIX shell quoting rules (the subset `shlex.split`
/// implements: single quotes, double quotes with `\` escapes, bare `\`).
pub fn split_shell_words(line: &str) -> Result<Vec<String>, ProtocolError> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(inner) => current.push(inner),
                        None => {
                            return Err(ProtocolError::InvalidQuoting("unterminated single quote"));
                        }
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('"' | '\\' | '$' | '`')) => current.push(escaped),
                            Some(other) => {
                                current.push('\\');
                                current.push(other);
                            }
                            None => {
                                return Err(ProtocolError::InvalidQuoting(
                                    "unterminated double quote",
                                ));
                            }
                        },
                        Some(inner) => current.push(inner),
                        None => {
                            return Err(ProtocolError::InvalidQuoting("unterminated double quote"));
                        }
                    }
                }
            }
            '\\' => match chars.next() {
                Some(escaped) => word.get_or_insert_with(String::new).push(escaped),
                None => return Err(ProtocolError::InvalidQuoting("trailing backslash")),
            },
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-for-byte what upstream's shell wrapper prints; old populators parse it.
    const UPSTREAM_CLONE_REPLY: &str = "<?xml version=\"1.0\" ?>\n\
<output xmlns=\"http://www.vmware.com/Products/ESX/5.0/esxcli/\">\n    \
<structure typeName=\"result\">\n        \
<field name=\"status\"><string>0</string></field>\n        \
<field name=\"message\"><string>{\"taskId\": \"3f1c0c56-1f7e-4f59-a9c2-8d1b6c3e0a11\", \"pid\": 4242, \"xcopyUsed\": false}</string></field>\n    \
</structure>\n</output>\n";

    #[test]
    fn envelope_matches_upstream_bytes() {
        let reply = WrapperReply::ok(
            r#"{"taskId": "3f1c0c56-1f7e-4f59-a9c2-8d1b6c3e0a11", "pid": 4242, "xcopyUsed": false}"#,
        );
        // Upstream does not escape quotes; an escaped `"` decodes identically, so compare decoded.
        assert_eq!(WrapperReply::from_xml(UPSTREAM_CLONE_REPLY).unwrap(), reply);
        assert_eq!(WrapperReply::from_xml(&reply.to_xml()).unwrap(), reply);
        let started: CloneStarted = decode_message(&reply.message).unwrap();
        assert_eq!(started.task_id, "3f1c0c56-1f7e-4f59-a9c2-8d1b6c3e0a11");
        assert_eq!(started.pid, 4242);
        assert!(!started.xcopy_used);
    }

    #[test]
    fn envelope_round_trips_markup_in_the_message() {
        let reply = WrapperReply::failed(1, "path </string> & <field> \"quoted\"");
        assert_eq!(WrapperReply::from_xml(&reply.to_xml()).unwrap(), reply);
    }

    #[test]
    fn envelope_tolerates_surrounding_noise_and_empty_message() {
        let xml = WrapperReply::ok("").to_xml();
        let noisy = format!("Welcome to ESXi\n{xml}trailing");
        assert_eq!(
            WrapperReply::from_xml(&noisy).unwrap(),
            WrapperReply::ok("")
        );
        let self_closing = "<output><structure><field name=\"status\"><string>0</string></field>\
                            <field name=\"message\"><string/></field></structure></output>";
        assert_eq!(
            WrapperReply::from_xml(self_closing).unwrap(),
            WrapperReply::ok("")
        );
    }

    #[test]
    fn envelope_errors_say_what_is_missing() {
        assert!(matches!(
            WrapperReply::from_xml("SSH_OK\n"),
            Err(ProtocolError::MalformedEnvelope { .. })
        ));
        let no_message = "<output><field name=\"status\"><string>0</string></field></output>";
        assert_eq!(
            WrapperReply::from_xml(no_message),
            Err(ProtocolError::MissingField("message"))
        );
        let no_status = "<output><field name=\"message\"><string>x</string></field></output>";
        assert_eq!(
            WrapperReply::from_xml(no_status),
            Err(ProtocolError::MissingField("status"))
        );
    }

    #[test]
    fn task_status_reads_running_finished_and_error_documents() {
        let running: TaskStatus = decode_message(
            r#"{"taskId": "t", "pid": 7, "exitCode": "", "lastLine": "Clone: 12% done.", "xcopyUsed": null, "stdErr": ""}"#,
        )
        .unwrap();
        assert_eq!(running.exit_code, None);
        assert_eq!(running.xcopy_used, None);
        assert_eq!(running.progress_percent(), Some(12));
        let finished: TaskStatus = decode_message(
            r#"{"taskId": "t", "pid": 7, "exitCode": "3", "lastLine": "", "xcopyUsed": true, "stdErr": "boom"}"#,
        )
        .unwrap();
        assert_eq!(finished.exit_code, Some(3));
        assert_eq!(finished.xcopy_used, Some(true));
        // Upstream error replies carry only stdErr.
        let error_only: TaskStatus = decode_message(r#"{"stdErr": "Failed to read PID"}"#).unwrap();
        assert_eq!(error_only.std_err, "Failed to read PID");
        assert!(decode_message::<TaskStatus>(r#"{"exitCode": "x"}"#).is_err());
    }

    #[test]
    fn task_status_json_field_names_are_the_contract() {
        let status = TaskStatus {
            task_id: "t".into(),
            pid: 1,
            exit_code: None,
            last_line: "l".into(),
            xcopy_used: None,
            std_err: "e".into(),
        };
        assert_eq!(
            encode_message(&status),
            r#"{"taskId":"t","pid":1,"exitCode":"","lastLine":"l","xcopyUsed":null,"stdErr":"e"}"#
        );
        let started = CloneStarted {
            task_id: "t".into(),
            pid: 2,
            xcopy_used: false,
        };
        assert_eq!(
            encode_message(&started),
            r#"{"taskId":"t","pid":2,"xcopyUsed":false}"#
        );
    }

    #[test]
    fn progress_never_reports_a_bogus_value() {
        assert_eq!(progress_percent("Clone: 45% done."), Some(45));
        assert_eq!(progress_percent("Clone: 0% done."), Some(0));
        assert_eq!(progress_percent("Clone: 100% done."), Some(100));
        assert_eq!(progress_percent("Clone: 5% done. Clone: 7% done."), Some(7));
        assert_eq!(progress_percent(""), None);
        assert_eq!(
            progress_percent("Destination disk format: VMFS thin-provisioned"),
            None
        );
        assert_eq!(progress_percent("Clone: -1% done."), None);
        assert_eq!(progress_percent("Clone: 101% done."), None);
        assert_eq!(progress_percent("Clone: 4294967295% done."), None);
        assert_eq!(progress_percent("%"), None);
    }

    #[test]
    fn ssh_commands_quote_every_word_and_parse_back() {
        let clone = WrapperCommand::Clone {
            source_vmdk: "/vmfs/volumes/ds 1/vm's/vm.vmdk".into(),
            target_device: "/vmfs/devices/disks/naa.600a".into(),
            task_id: None,
        };
        let line = clone.to_ssh_command();
        assert_eq!(
            line,
            r"--clone -s '/vmfs/volumes/ds 1/vm'\''s/vm.vmdk' -t /vmfs/devices/disks/naa.600a"
        );
        assert_eq!(
            WrapperCommand::parse_ssh_command(&line).unwrap(),
            (None, clone.clone())
        );
        let framed = clone.to_legacy_frame("ds 1");
        assert_eq!(
            WrapperCommand::parse_ssh_command(&framed).unwrap(),
            (Some("ds 1".to_owned()), clone)
        );
    }

    const CLIENT_ID: &str = "0b6f1a52-94de-4c35-8d0e-5f0c2a7be113";

    fn clone_command(task_id: Option<&str>) -> WrapperCommand {
        WrapperCommand::Clone {
            source_vmdk: "/vmfs/volumes/ds1/vm/vm.vmdk".into(),
            target_device: "/vmfs/devices/disks/naa.600a".into(),
            task_id: task_id.map(str::to_owned),
        }
    }

    /// Wrapper 1.0.0 refuses any option it does not know: without an id the clone command must
    /// stay exactly what every wrapper accepts.
    #[test]
    fn clone_without_a_task_id_keeps_the_1_0_wire_forms() {
        let clone = clone_command(None);
        assert_eq!(
            clone.to_ssh_command(),
            "--clone -s /vmfs/volumes/ds1/vm/vm.vmdk -t /vmfs/devices/disks/naa.600a"
        );
        assert_eq!(
            clone.to_legacy_frame("ds1"),
            "DS=ds1;CMD=--clone -s /vmfs/volumes/ds1/vm/vm.vmdk -t /vmfs/devices/disks/naa.600a"
        );
        assert_eq!(
            clone.esxcli_args(),
            [
                "vmkfstools",
                "clone",
                "-s",
                "/vmfs/volumes/ds1/vm/vm.vmdk",
                "-t",
                "/vmfs/devices/disks/naa.600a"
            ]
        );
    }

    #[test]
    fn clone_with_a_task_id_appends_it_in_every_form_and_parses_back() {
        let clone = clone_command(Some(CLIENT_ID));
        let line = clone.to_ssh_command();
        assert_eq!(
            line,
            "--clone -s /vmfs/volumes/ds1/vm/vm.vmdk -t /vmfs/devices/disks/naa.600a \
             -i 0b6f1a52-94de-4c35-8d0e-5f0c2a7be113"
        );
        assert_eq!(
            clone.esxcli_args(),
            [
                "vmkfstools",
                "clone",
                "-s",
                "/vmfs/volumes/ds1/vm/vm.vmdk",
                "-t",
                "/vmfs/devices/disks/naa.600a",
                "-i",
                CLIENT_ID
            ]
        );
        assert_eq!(
            WrapperCommand::parse_ssh_command(&line).unwrap(),
            (None, clone.clone())
        );
        assert_eq!(
            WrapperCommand::parse_ssh_command(&clone.to_legacy_frame("ds1")).unwrap(),
            (Some("ds1".to_owned()), clone.clone())
        );
        let long_form = format!(
            "--clone --task-id {CLIENT_ID} --source-vmdk /vmfs/volumes/ds1/vm/vm.vmdk \
             --target-lun /vmfs/devices/disks/naa.600a"
        );
        assert_eq!(
            WrapperCommand::parse_ssh_command(&long_form).unwrap(),
            (None, clone)
        );
        assert_eq!(
            WrapperCommand::parse_ssh_command(
                "--clone -s /vmfs/volumes/ds1/a.vmdk -t /vmfs/devices/disks/n -i a -i b"
            ),
            Err(ProtocolError::UnsupportedCommand(
                "--clone -s /vmfs/volumes/ds1/a.vmdk -t /vmfs/devices/disks/n -i a -i b".into()
            ))
        );
    }

    #[test]
    fn only_wrappers_from_1_1_0_take_a_client_task_id() {
        for (version, accepts) in [
            ("1.0.0", false),
            ("0.9.9", false),
            ("1.1.0", true),
            ("1.1.1", true),
            ("1.10.0", true),
            ("2.0.0", true),
            (" 1.1.0\n", true),
            ("1.1", false),
            ("1.1.0-rc1", false),
            ("1.1.0.0", false),
            ("", false),
            ("unknown", false),
        ] {
            assert_eq!(accepts_client_task_id(version), accepts, "{version:?}");
        }
    }

    #[test]
    fn task_ids_are_lowercase_hyphenated_uuids() {
        assert!(is_task_id(CLIENT_ID));
        assert!(is_task_id(&uuid_like('a')));
        for bad in [
            "",
            "0B6F1A52-94DE-4C35-8D0E-5F0C2A7BE113",
            "0b6f1a5294de4c358d0e5f0c2a7be113",
            "0b6f1a52-94de-4c35-8d0e-5f0c2a7be11",
            "0b6f1a52-94de-4c35-8d0e-5f0c2a7be113 ",
            "0b6f1a52-94de-4c35-8d0e-5f0c2a7be11g",
            "../../../etc/passwd-aaaa-aaaa-aaaaaaaa",
        ] {
            assert!(!is_task_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn task_id_is_checked_when_made_and_travels_as_a_plain_string() {
        let id = TaskId::parse(CLIENT_ID).unwrap();
        assert_eq!(id.to_string(), CLIENT_ID);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            format!("\"{CLIENT_ID}\"")
        );
        let back: TaskId = serde_json::from_str(&format!("\"{CLIENT_ID}\"")).unwrap();
        assert_eq!(back, id);
        let edited = format!("\"{CLIENT_ID}'; reboot; '\"");
        assert!(serde_json::from_str::<TaskId>(&edited).is_err());
        let refused = TaskId::parse(&"x".repeat(10_000)).unwrap_err();
        assert_eq!(
            refused.value.len(),
            64,
            "the refused text is cut for messages"
        );
        let fresh = TaskId::random();
        assert!(is_task_id(fresh.as_str()));
        assert_ne!(fresh, TaskId::random());
    }

    #[test]
    fn encoded_esxcli_values_hold_only_shell_inert_characters_and_decode_back() {
        let clone = WrapperCommand::Clone {
            source_vmdk: "/vmfs/volumes/ds1/Bob's VM/$(reboot) 仮想\u{a0}.vmdk".into(),
            target_device: "/vmfs/devices/disks/naa.600a".into(),
            task_id: Some(CLIENT_ID.into()),
        };
        let args = clone.esxcli_args_encoded();
        assert_eq!(&args[..3], ["vmkfstools", "clone", "-s"]);
        for value in [&args[3], &args[5], &args[7]] {
            assert!(value.starts_with(ENCODED_VALUE_PREFIX), "{value}");
            assert!(
                value[4..]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{value}"
            );
        }
        let received = WrapperCommand::Clone {
            source_vmdk: args[3].clone(),
            target_device: args[5].clone(),
            task_id: Some(args[7].clone()),
        };
        assert_eq!(received.decode_esxcli_values().unwrap(), clone);
        // Plain values from older populators pass through; broken encodings are refused.
        assert_eq!(decode_esxcli_value("/vmfs/a").unwrap(), "/vmfs/a");
        for bad in ["hex:2", "hex:2G", "hex:2F", "hex:ff"] {
            assert!(decode_esxcli_value(bad).is_err(), "{bad}");
        }
        assert!(accepts_encoded_values("1.2.0") && !accepts_encoded_values("1.1.0"));
    }

    fn uuid_like(fill: char) -> String {
        [8, 4, 4, 4, 12]
            .iter()
            .map(|n| fill.to_string().repeat(*n))
            .collect::<Vec<_>>()
            .join("-")
    }

    #[test]
    fn upstream_framing_is_understood() {
        assert_eq!(
            WrapperCommand::parse_ssh_command("DS=;CMD=status test-task-id").unwrap(),
            (None, WrapperCommand::Probe)
        );
        assert_eq!(
            WrapperCommand::parse_ssh_command("DS=ds1;CMD=--task-get -i abc").unwrap(),
            (
                Some("ds1".into()),
                WrapperCommand::TaskGet {
                    task_id: "abc".into()
                }
            )
        );
        assert_eq!(
            WrapperCommand::Probe.to_legacy_frame("x"),
            "DS=;CMD=status test-task-id"
        );
    }

    /// The routed form carries only characters Forklift's key line (`echo | sed`) and the shell
    /// wrapper's space split leave alone, and decodes back to the same command.
    #[test]
    fn routed_requests_encode_every_value_and_decode_back() {
        let clone = WrapperCommand::Clone {
            source_vmdk: "/vmfs/volumes/ds1/Bob's VM/ディスク\u{a0}1.vmdk".into(),
            target_device: "/vmfs/devices/disks/naa.600a".into(),
            task_id: Some("0b6f1a52-94de-4c35-8d0e-5f0c2a7be113".into()),
        };
        let routed = clone.to_routed_request("ds1");
        let command = routed.strip_prefix("DS=ds1;CMD=").unwrap();
        assert!(
            command
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-: ".contains(&b)),
            "{routed}"
        );
        let (_, parsed) = WrapperCommand::parse_ssh_command(command).unwrap();
        assert_eq!(parsed.decode_esxcli_values().unwrap(), clone);
        assert_eq!(
            WrapperCommand::Probe.to_routed_request("ds1"),
            "DS=;CMD=--probe"
        );
        assert_eq!(
            WrapperCommand::Version.to_routed_request("ds1"),
            "DS=ds1;CMD=--version"
        );
    }

    #[test]
    fn unknown_or_incomplete_commands_are_refused() {
        for line in [
            "",
            "id",
            "--clone -s /a",
            "--clone -s /a -t /b -x y",
            "--task-get -i a -i b",
            "--version extra",
            "--task-get 'unterminated",
        ] {
            assert!(
                WrapperCommand::parse_ssh_command(line).is_err(),
                "{line:?} accepted"
            );
        }
    }

    #[test]
    fn esxcli_argv_uses_the_vib_namespace() {
        let get = WrapperCommand::TaskGet {
            task_id: "t".into(),
        };
        assert_eq!(get.esxcli_args(), ["vmkfstools", "taskGet", "-i", "t"]);
        assert_eq!(
            WrapperCommand::Version.esxcli_args(),
            ["vmkfstools", "version"]
        );
        assert_eq!(
            WrapperCommand::TaskClean {
                task_id: "t".into()
            }
            .wrapper_args(),
            ["--task-clean", "-i", "t"]
        );
    }

    #[test]
    fn shell_words_follow_posix_rules() {
        assert_eq!(
            split_shell_words(r#"a "b c" 'd e' f\ g "h\"i""#).unwrap(),
            ["a", "b c", "d e", "f g", "h\"i"]
        );
        assert_eq!(split_shell_words("''").unwrap(), [""]);
        assert!(split_shell_words("\"open").is_err());
    }
}
