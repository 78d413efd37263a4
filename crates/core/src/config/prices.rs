//! `PRICES_FILE`: the price table ([`crate::costs::PriceTable`]), the
//! defaults with what the file sets instead.

use std::path::PathBuf;

use super::reader::Reader;
use crate::costs::PriceTable;

/// The file (if set) and the table it gives; a file that cannot be read,
/// or holds an unknown key or a bad price, is a problem naming it.
pub(super) fn prices<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> (Option<PathBuf>, PriceTable) {
    let Some(path) = r.get("PRICES_FILE").map(PathBuf::from) else {
        return (None, PriceTable::default());
    };
    let table = match std::fs::read_to_string(&path) {
        Ok(text) => PriceTable::from_toml(&text).map_err(|err| format!("{}: {err}", path.display())),
        Err(err) => Err(format!("cannot read {}: {err}", path.display())),
    };
    match table {
        Ok(table) => (Some(path), table),
        Err(problem) => {
            r.problem("PRICES_FILE", problem);
            (Some(path), PriceTable::default())
        }
    }
}
