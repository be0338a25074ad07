//! The studio's pages, one module each.

pub mod backup;
pub mod browse;
pub mod common;
pub mod databases;
pub mod documents;
pub mod login;
pub mod notifications;
pub mod overview;
pub mod restore;
pub mod sets;
pub mod smuggler;
pub mod status;
pub mod tasks;
