//! Integration tests: the real binary against the simulator over loopback HTTP.
//! One test binary with modules keeps linking fast.

// A failed unwrap is a failed test, with its location: the clearest report a test can give.
#![allow(clippy::unwrap_used)]

mod action;
mod architecture;
mod artifacts;
mod ci_reports;
mod cli;
mod disks;
mod docs;
mod doctor;
mod faults;
mod imports;
mod integrations;
mod leaks;
mod network;
mod real_world;
mod release;
mod security;
mod settle;
mod shell;
mod simulator;
mod support;
mod terminal;
mod upload;
mod watch;
