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

/// A JSON-lines destination: a file (appended to) or standard output.
pub struct JsonLinesSink {
    target: String,
    out: BufWriter<Box<dyn Write + Send>>,
    lines: u64,
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
        Ok(JsonLinesSink { target: spec.to_string(), out: BufWriter::with_capacity(1 << 20, w), lines: 0 })
    }

    /// Writes already-serialised lines (each ending in '\n').
    pub fn write_raw(&mut self, lines: &[u8], count: u64) -> Result<(), ExportError> {
        self.lines += count;
        self.out.write_all(lines).map_err(|source| ExportError::Write { target: self.target.clone(), source })
    }

    pub fn flush(&mut self) -> Result<(), ExportError> {
        self.out.flush().map_err(|source| ExportError::Write { target: self.target.clone(), source })
    }

    /// Lines written so far.
    /// Flushes and opens the target again (after log rotation moved the file away).
    pub fn reopen(&mut self) -> Result<(), ExportError> {
        self.flush()?;
        if self.target != "-" {
            let lines = self.lines;
            *self = JsonLinesSink::open(&self.target)?;
            self.lines = lines;
        }
        Ok(())
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }
}
