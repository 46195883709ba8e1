//! placeholder replaced below
pub(crate) fn main(_args: &[String]) -> Result<(), String> { Err("todo".into()) }
