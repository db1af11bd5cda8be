//! Evaluates FEEL expressions given as arguments and prints the results:
//! `cargo run -p baton-decision --example feel -- '1 + 1' 'date("2020-01-01").year'`.

fn main() {
    for src in std::env::args().skip(1) {
        match baton_decision::feel::eval_str(&src) {
            Ok(v) => println!("{src} => {v:#}"),
            Err(e) => println!("{src} => error: {e}"),
        }
    }
}
