//! A voice proxy on the routing hook (PROTOCOL.md section 5): customers dial the company number and
//! reach the employee assigned to them, from a table this program owns; a customer with no
//! employee reaches the front desk. Everything else rings as dialled.
//!
//! ```text
//! cargo run --example proxy -- my-secret
//! # the employee +4799990002 waits for calls:
//! cargo run --example terminal -- --token "$(cargo run -q -- token --msisdn +4799990002 --jwt-secret my-secret)" wait --answer
//! # the customer +4799990001 calls the company number and reaches that employee:
//! cargo run --example terminal -- --token "$(cargo run -q -- token --msisdn +4799990001 --jwt-secret my-secret)" call +4721000000
//! ```

use std::collections::HashMap;
use webterminal_core::core::{CallContext, Msisdn, Route, Router};
use webterminal_core::server::{Exchange, ServerConfig};

/// The company's number, and who answers whom.
struct Assignments {
    company: Msisdn,
    front_desk: Msisdn,
    employee_of: HashMap<Msisdn, Msisdn>,
}

impl Router for Assignments {
    /// Runs on the core's switch task for every new call: a table lookup, nothing that waits.
    fn route(&mut self, from: &Msisdn, to: &Msisdn, _context: &CallContext) -> Route {
        if *to != self.company {
            return Route::Ring(to.clone());
        }
        let employee = self.employee_of.get(from).unwrap_or(&self.front_desk);
        println!("{from} calls the company: ringing {employee}");
        Route::Ring(employee.clone())
    }
}

fn number(text: &str) -> Msisdn {
    Msisdn::parse(text).expect("E.164")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "my-secret".into());
    let exchange = Exchange::start(ServerConfig::new(secret.into_bytes()));
    exchange
        .set_router(Assignments {
            company: number("+4721000000"),
            front_desk: number("+4799990009"),
            employee_of: [
                (number("+4799990001"), number("+4799990002")),
                (number("+4799990003"), number("+4799990004")),
            ]
            .into(),
        })
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
    println!("proxy serving on {}; Ctrl-C stops", listener.local_addr()?);
    exchange
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
