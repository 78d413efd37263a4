//! Chaos with real `mw` processes: crashes at chosen points and kill -9 (crash), cut connections, unreachable services and failing providers (faults).

mod crash;
mod faults;
