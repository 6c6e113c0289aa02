//! Events out of the sensor: OCSF builders ([`ocsf`]) and JSON-lines sinks.

pub mod ecs;
pub mod ocsf;
pub mod openapi;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("cannot open event output {path}: {source}; check that the directory exists and is writable")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot write events to {target}: {source}; check free disk space and permissions")]
    Write { target: String, source: std::io::Error },
}

/// An event in the configured schema (events are built in OCSF form).
pub fn in_format(ev: serde_json::Value, format: crate::config::EventFormat) -> serde_json::Value {
    match format {
        crate::config::EventFormat::Ocsf => ev,
        crate::config::EventFormat::Ecs => ecs::from_ocsf(&ev),
    }
}

/// Bytes buffered before a write reaches the target.
const SINK_BUFFER_BYTES: usize = 1 << 20;

/// A JSON-lines destination: a file (appended to) or standard output.
///
/// Accounting is honest about buffering: a line counts as written only once a
/// flush that included it succeeded; when a write or flush fails, every line
/// still in the buffer is counted as lost and the buffer is dropped, so a
/// target that recovers (disk space freed) starts again cleanly.
pub struct JsonLinesSink {
    target: String,
    out: BufWriter<Box<dyn Write + Send>>,
    buffered: u64,
    written: u64,
    lost: u64,
}

impl JsonLinesSink {
    /// Opens `spec`: "-" is standard output, anything else a file path (created or appended).
    pub fn open(spec: &str) -> Result<JsonLinesSink, ExportError> {
        let w: Box<dyn Write + Send> = if spec == "-" {
            Box::new(std::io::stdout())
        } else {
            let path = Path::new(spec);
            let f: File = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| ExportError::Open { path: path.to_path_buf(), source })?;
            Box::new(f)
        };
        Ok(JsonLinesSink {
            target: spec.to_string(),
            out: BufWriter::with_capacity(SINK_BUFFER_BYTES, w),
            buffered: 0,
            written: 0,
            lost: 0,
        })
    }

    fn failed(&mut self, unaccepted: u64, source: std::io::Error) -> ExportError {
        self.lost += self.buffered + unaccepted;
        self.buffered = 0;
        // drop what the buffer holds: those lines are already counted as lost
        let inner = std::mem::replace(&mut self.out, BufWriter::new(Box::new(std::io::sink()))).into_parts().0;
        self.out = BufWriter::with_capacity(SINK_BUFFER_BYTES, inner);
        ExportError::Write { target: self.target.clone(), source }
    }

    /// Writes already-serialised lines (each ending in '\n').
    pub fn write_raw(&mut self, lines: &[u8], count: u64) -> Result<(), ExportError> {
        match self.out.write_all(lines) {
            Ok(()) => {
                self.buffered += count;
                Ok(())
            }
            Err(e) => Err(self.failed(count, e)),
        }
    }

    pub fn flush(&mut self) -> Result<(), ExportError> {
        match self.out.flush() {
            Ok(()) => {
                self.written += self.buffered;
                self.buffered = 0;
                Ok(())
            }
            Err(e) => Err(self.failed(0, e)),
        }
    }

    /// Flushes and opens the target again (after log rotation moved the file away).
    pub fn reopen(&mut self) -> Result<(), ExportError> {
        let flushed = self.flush();
        if self.target != "-" {
            let (written, lost) = (self.written, self.lost);
            *self = JsonLinesSink::open(&self.target)?;
            self.written = written;
            self.lost = lost;
        }
        flushed
    }

    /// Lines known to have reached the target.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Lines lost to failed writes.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

/// RFC 3339 UTC time of a µs timestamp.
pub fn rfc3339_us(us: u64) -> String {
    let secs = us / 1_000_000;
    let micros = us % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // civil from days (H. Hinnant's algorithm), days since 1970-01-01
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
