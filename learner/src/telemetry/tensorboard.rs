//! TensorBoard event files, written directly: stock `tensorboard --logdir RUN_DIR` reads them.
//!
//! A file is a sequence of TFRecords (`u64` length, masked CRC-32C of the length, the data,
//! masked CRC-32C of the data), each holding one `tensorflow.Event` protobuf: first the file
//! version, then one event per status interval with every quantity as a scalar summary (and
//! one per finished episode), and the run's config as text (TensorBoard's text plugin). Only the
//! fields these need are declared here, with TensorFlow's field numbers.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;

/// `tensorflow.Event` (the fields scalars use).
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: a `simple_value` (set even when 0: it is a oneof member), or a
/// tensor with the metadata naming the plugin that shows it.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    tensor: Option<TensorProto>,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
}

/// `tensorflow.SummaryMetadata` (its `plugin_data`).
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
}

/// `tensorflow.TensorProto`: a scalar string tensor (`dtype` 7 is `DT_STRING`; no shape
/// dimensions: a scalar).
#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShapeProto>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    string_val: Vec<Vec<u8>>,
}

/// `tensorflow.TensorShapeProto` (no dimensions).
#[derive(Clone, PartialEq, prost::Message)]
struct TensorShapeProto {}

/// TFRecord's masked CRC.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xA282_EAD8)
}

/// Appends events to one `events.out.tfevents.*` file.
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EventWriter {
    /// A new event file in `dir` (created if missing), named as TensorFlow names them.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "shoal".into());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}",
            now_secs() as u64,
            std::process::id()
        ));
        let mut w = Self {
            file: BufWriter::new(File::create(&path)?),
            path,
        };
        w.write_event(&Event {
            wall_time: now_secs(),
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        })?;
        w.file.flush()?;
        Ok(w)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One event holding `scalars` (tag, value) at `step`, flushed.
    pub fn scalars(&mut self, step: u64, scalars: &[(String, f32)]) -> io::Result<()> {
        self.scalar_event(step, scalars)?;
        self.file.flush()
    }

    /// One event per `(step, scalars)`, flushed once at the end.
    pub fn scalar_events(&mut self, points: &[(u64, Vec<(String, f32)>)]) -> io::Result<()> {
        for (step, scalars) in points {
            self.scalar_event(*step, scalars)?;
        }
        self.file.flush()
    }

    fn scalar_event(&mut self, step: u64, scalars: &[(String, f32)]) -> io::Result<()> {
        let summary = Summary {
            value: scalars
                .iter()
                .map(|(tag, v)| SummaryValue {
                    tag: tag.clone(),
                    simple_value: Some(*v),
                    ..SummaryValue::default()
                })
                .collect(),
        };
        self.write_event(&Event {
            wall_time: now_secs(),
            step: step as i64,
            file_version: None,
            summary: Some(summary),
        })
    }

    /// `text` under `tag` for TensorBoard's text tab (Markdown), at step 0, flushed.
    pub fn text(&mut self, tag: &str, text: &str) -> io::Result<()> {
        let value = SummaryValue {
            tag: tag.to_string(),
            simple_value: None,
            tensor: Some(TensorProto {
                dtype: 7,
                tensor_shape: Some(TensorShapeProto {}),
                string_val: vec![text.as_bytes().to_vec()],
            }),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: "text".into(),
                }),
            }),
        };
        self.write_event(&Event {
            wall_time: now_secs(),
            step: 0,
            file_version: None,
            summary: Some(Summary { value: vec![value] }),
        })?;
        self.file.flush()
    }

    fn write_event(&mut self, event: &Event) -> io::Result<()> {
        let data = event.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        self.file.write_all(&len)?;
        self.file.write_all(&masked_crc(&len).to_le_bytes())?;
        self.file.write_all(&data)?;
        self.file.write_all(&masked_crc(&data).to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of "123456789" (RFC 3720, appendix B.4).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::crc32c(b""), 0);
    }

    #[test]
    fn records_frame_events_that_decode_back() {
        let dir = std::env::temp_dir().join(format!("shoal-tb-{}", std::process::id()));
        let mut w = EventWriter::create(&dir).unwrap();
        w.scalars(7, &[("charts/SPS".into(), 0.0), ("x".into(), 2.5)])
            .unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let mut events = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            assert_eq!(
                u32::from_le_bytes(rest[8..12].try_into().unwrap()),
                masked_crc(&rest[..8])
            );
            let data = &rest[12..12 + len];
            assert_eq!(
                u32::from_le_bytes(rest[12 + len..16 + len].try_into().unwrap()),
                masked_crc(data)
            );
            events.push(Event::decode(data).unwrap());
            rest = &rest[16 + len..];
        }
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        let values = &events[1].summary.as_ref().unwrap().value;
        assert_eq!(events[1].step, 7);
        // A zero is written (a oneof member has presence).
        assert_eq!(values[0].simple_value, Some(0.0));
        assert_eq!(
            (values[1].tag.as_str(), values[1].simple_value),
            ("x", Some(2.5))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
