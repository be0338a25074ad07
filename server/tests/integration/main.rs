//! Integration tests: real `rookery-server` processes on free ports, real
//! fjall stores in temp directories, real backup files on disk.

mod auth;
mod backup;
mod bench;
mod cancel;
mod cli;
mod common;
mod compact;
mod copy;
mod destinations;
mod documents;
mod durability;
mod encryption;
mod faults;
mod house;
mod logs;
mod monitor;
mod object_lock;
mod readme;
mod reference;
mod restore;
mod s3;
mod shared_tables;
mod smuggler;
mod snapshot;
mod tasks;
mod timetravel;
mod trust;
mod trust3;
