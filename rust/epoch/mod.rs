//! One rank's share of an epoch: sharding ([`shard`]), the epoch of any order ([`indices`]),
//! the torch order streamed while it is shuffled ([`stream`]) and chunked readers ([`reader`]).

pub mod indices;
pub mod reader;
pub mod shard;
pub mod stream;
