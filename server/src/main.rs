fn main() { eprintln!("odigos-opamp-server: not implemented yet"); std::process::exit(1); }
