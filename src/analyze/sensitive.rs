//! Placeholder until the sensitive-data scanner lands (same API).
use crate::analyze::fingerprint::Fingerprinter;
use crate::proto::HttpTransaction;
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveKind { Email, Phone, CreditCard, Iban, Ssn, DateOfBirth, Address, IpAddress, Jwt, Secret, Password, ApiKey }
impl SensitiveKind { pub fn as_str(self) -> &'static str { "email" } }
#[derive(Clone, Debug, PartialEq, Eq)] pub enum Location { Header(String), Query(String), Path, Body(String) }
#[derive(Clone, Debug, PartialEq, Eq)] pub struct Finding { pub kind: SensitiveKind, pub location: Location, pub fingerprint: String, pub redacted: String }
#[derive(Clone, Debug, Default)] pub struct ScanLimits { pub max_decompressed_bytes: usize, pub max_scan_bytes: usize, pub max_findings: usize, pub max_json_depth: usize }
#[derive(Clone, Debug, Default, serde::Serialize)] pub struct ScanStats { pub bodies_scanned: u64 }
pub fn scan_request(_tx: &HttpTransaction, _l: &ScanLimits, _fp: &Fingerprinter, _s: &mut ScanStats) -> Vec<Finding> { Vec::new() }
pub fn scan_response(_tx: &HttpTransaction, _l: &ScanLimits, _fp: &Fingerprinter, _s: &mut ScanStats) -> Vec<Finding> { Vec::new() }
