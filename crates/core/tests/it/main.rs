//! chartyard-core's integration tests, one binary: archive loading against the shared
//! chart corpus and against hostile archives.

mod corpus;
mod hostile_archives;
