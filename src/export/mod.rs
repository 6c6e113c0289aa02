//! Events out of the sensor: OCSF builders ([`ocsf`]) and JSON-lines sinks.

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
