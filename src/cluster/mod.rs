//! Running Kavka as a cluster.
//!
//! [`local_up`] starts a local cluster of combined broker+controller processes on the loopback
//! interface (`kavka cluster up`), for development and tests.

pub mod lifecycle;
pub mod local_up;
