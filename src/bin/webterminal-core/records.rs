//! `webterminal-core records`: its flags, and printing call records as a table, CSV or JSON lines.

use crate::parse::{parse_msisdn_lenient, parse_time};
use crate::CliResult;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::SystemTime;
use webterminal_core::core::Msisdn;
use webterminal_core::records::{self, RecordQuery, RecordStore, SqliteStore};

#[derive(Args, Debug)]
pub(crate) struct RecordsArgs {
    /// The records database. Default: records.sqlite3 in the data directory.
    #[arg(long, value_name = "PATH")]
    records: Option<PathBuf>,
    /// Only calls this number made or received (E.164, the '+' optional).
    #[arg(long, value_parser = parse_msisdn_lenient)]
    msisdn: Option<Msisdn>,
    /// Only calls started at or after this time (RFC 3339 in UTC, e.g. 2026-12-02T07:00:00Z).
    #[arg(long, value_parser = parse_time)]
    since: Option<SystemTime>,
    /// Only calls started before this time (RFC 3339 in UTC).
    #[arg(long, value_parser = parse_time)]
    until: Option<SystemTime>,
    /// How to print them.
    #[arg(long, value_enum, default_value = "table")]
    format: RecordsFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RecordsFormat {
    /// An aligned table for people; an estimated end is marked '~'.
    Table,
    /// CSV (RFC 4180) with a header line.
    Csv,
    /// One JSON object per line, field names as in CallRecord.
    Json,
}

/// `webterminal-core/records.sqlite3` in the user's data directory, as
/// [`secret_path`](crate::secret::secret_path).
pub(crate) fn records_path() -> Option<PathBuf> {
    Some(
        dirs::data_dir()?
            .join("webterminal-core")
            .join("records.sqlite3"),
    )
}

/// `webterminal-core records`: every matching record, newest first, a page at a time.
pub(crate) fn run_records(args: RecordsArgs) -> CliResult {
    use std::io::Write;
    let path = match args.records {
        Some(path) => path,
        None => records_path()
            .ok_or("cannot find a data directory: set XDG_DATA_HOME or HOME, or pass --records")?,
    };
    if !path.exists() {
        return Err(format!("no call records at {}", path.display()).into());
    }
    let store = SqliteStore::open_read_only(&path)?;
    let mut query = RecordQuery {
        msisdn: args.msisdn,
        since: args.since,
        until: args.until,
        page_size: records::MAX_PAGE_SIZE,
        after: None,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table = Vec::new();
    let written = (|| -> std::io::Result<()> {
        if let RecordsFormat::Csv = args.format {
            writeln!(out, "{}", records::format::CSV_HEADER)?;
        }
        loop {
            let page = store.list(&query).map_err(std::io::Error::other)?;
            for record in page.records {
                match args.format {
                    RecordsFormat::Json => {
                        writeln!(out, "{}", records::format::json_line(&record))?
                    }
                    RecordsFormat::Csv => writeln!(out, "{}", records::format::csv_line(&record))?,
                    RecordsFormat::Table => table.push(record),
                }
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        if let RecordsFormat::Table = args.format {
            out.write_all(records::format::table(&table).as_bytes())?;
        }
        out.flush()
    })();
    match written {
        // `records | head` closed the pipe: not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    #[test]
    fn records_flags_and_command() {
        let serve = |extra: &[&str]| {
            let cli =
                Cli::try_parse_from(["webterminal-core", "serve"].iter().chain(extra)).unwrap();
            let Command::Serve(args) = cli.command else {
                panic!("expected serve")
            };
            args.records
        };
        assert_eq!(serve(&[]), None);
        assert_eq!(serve(&["--records", "none"]), Some(PathBuf::from("none")));
        assert_eq!(
            serve(&["--records", "/tmp/r.sqlite3"]),
            Some(PathBuf::from("/tmp/r.sqlite3"))
        );
        let cli = Cli::try_parse_from([
            "webterminal-core",
            "records",
            "--msisdn",
            "4799990001",
            "--since",
            "2026-12-02T07:00:00Z",
            "--until",
            "2026-12-02 08:00:00.5",
            "--format",
            "json",
        ])
        .unwrap();
        let Command::Records(args) = cli.command else {
            panic!("expected records")
        };
        assert_eq!(args.msisdn, Some(Msisdn::parse("+4799990001").unwrap()));
        assert_eq!(
            args.since.map(|t| humantime::format_rfc3339(t).to_string()),
            Some("2026-12-02T07:00:00Z".to_owned())
        );
        assert_eq!(
            args.until
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            Some("2026-12-02T08:00:00.500Z".to_owned())
        );
        assert!(matches!(args.format, RecordsFormat::Json));
        for bad in [
            &["--since", "yesterday"][..],
            &["--since", "2026-12-02T07:00:00+01:00"],
            &["--msisdn", "not a number"],
            &["--format", "xml"],
        ] {
            assert!(
                Cli::try_parse_from(["webterminal-core", "records"].iter().chain(bad)).is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}
