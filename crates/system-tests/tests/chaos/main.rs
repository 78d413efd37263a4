//! Chaos with real `mw` processes: crashes at chosen points and kill -9 (crash), cut connections, unreachable services and failing providers (faults), two API processes firing schedules (schedules).

mod crash;
mod faults;
mod schedules;
