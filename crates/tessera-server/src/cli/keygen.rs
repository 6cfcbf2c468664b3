//! `tessera keygen`: fresh secrets from the OS random generator.

use std::process::ExitCode;

use tessera::KeyRing;
use zeroize::Zeroizing;

use super::{EXIT_CONFIG, KeygenArgs};

const NAMES: [&str; 3] = ["JWT_SECRET", "SESSION_ENCRYPTION_KEY", "TESSERA_API_KEY"];

pub(super) fn run(args: &KeygenArgs) -> ExitCode {
    let mut secrets = Vec::with_capacity(NAMES.len());
    for _ in NAMES {
        match KeyRing::generate_secret() {
            Ok(s) => secrets.push(Zeroizing::new(s)),
            Err(e) => {
                eprintln!("error: {}", e.message());
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = NAMES
            .iter()
            .zip(&secrets)
            .map(|(n, s)| ((*n).to_owned(), serde_json::Value::String(s.to_string())))
            .collect();
        println!("{}", serde_json::Value::Object(map));
    } else {
        for (name, secret) in NAMES.iter().zip(&secrets) {
            println!("{name}={}", secret.as_str());
        }
    }
    ExitCode::SUCCESS
}
