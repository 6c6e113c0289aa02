//! Placeholder HPACK decoder (static table indexes only); replaced by the full decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Known { name: Vec<u8>, value: Vec<u8> },
    Unknown { index: u64, value: Option<Vec<u8>> },
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HpackError { Truncated }
pub struct Decoder;
impl Decoder {
    pub fn new(_m: usize, _h: usize) -> Decoder { Decoder }
    pub fn new_midstream(_m: usize, _h: usize) -> Decoder { Decoder }
    pub fn set_max_table_size(&mut self, _n: usize) {}
    pub fn decode(&mut self, _block: &[u8], _max: usize, _out: &mut Vec<Field>) -> Result<(), HpackError> { Err(HpackError::Truncated) }
}
