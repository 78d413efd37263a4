//! Chaos with real `mw` processes: crashes at chosen points and kill -9 (crash), cut connections, unreachable services and failing providers (faults), two API processes firing schedules (schedules), two APIs and two orchestrators behind load balancers under kill -9 (replicas).

mod crash;
mod faults;
mod replicas;
mod schedules;
