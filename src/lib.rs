pub mod artifacts;
