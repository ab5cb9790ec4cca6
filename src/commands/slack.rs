//! `dbt-secoda slack conversations`: the Slack conversations and channels Secoda can post to.

use serde_json::Value;

use super::{Output, connect, finish, interruptible};
use crate::config::ConnectionInput;
use crate::exit::ExitCode;
use crate::report::OutputFormat;
use crate::report::table::{cell, table};
use crate::style::Paint;

pub async fn conversations(connection: ConnectionInput, output: OutputFormat) -> ExitCode {
    let result = interruptible(async {
        let (client, _, _) = connect(&connection)?;
        let conversations = client.slack_conversations().await?;
        let rows: Vec<Vec<String>> = conversations
            .iter()
            .map(|c| vec![cell(c.get("id")), cell(c.get("name"))])
            .collect();
        Ok(Output {
            text: table(&["ID", "NAME"], &rows, Paint::stdout()),
            json: Value::Array(conversations),
        })
    })
    .await;
    finish(result, output)
}
