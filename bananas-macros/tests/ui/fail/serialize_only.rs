// A type that is `Serialize` but not `DeserializeOwned` gets one error at
// the parameter or return type, naming the missing trait.

#[derive(serde::Serialize)]
struct Report {
    pages: u32,
}

#[bananas::task]
async fn render(title: String, report: Report) -> anyhow::Result<Report> {
    let _ = title;
    Ok(report)
}

fn main() {}
