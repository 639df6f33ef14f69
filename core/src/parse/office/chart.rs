//! Charts (DrawingML `c:chartSpace` parts of DOCX, PPTX and XLSX): the title and axis titles as
//! lines, then one line per series with its name and each category's value, e.g.
//! `Sales: Q1 4.3, Q2 2.5`. Charts often carry the numbers a slide talks about.
use super::{local, walk_xml, Ev, Package, Sink};
use crate::error::Result;
use std::collections::BTreeMap;

/// Points of one series written out; a chart of thousands of points is data, not prose.
const MAX_POINTS: usize = 200;

pub(super) fn chart(pkg: &mut Package, part: &str, sink: &mut Sink) -> Result<()> {
    let Some(xml) = pkg.read_text(part)? else { return Ok(()) };
    for line in chart_lines(&xml, part)? {
        sink.para_break();
        sink.push(&line);
    }
    sink.para_break();
    Ok(())
}

/// Which series element the text being read belongs to.
#[derive(Clone, Copy, PartialEq)]
enum In {
    Name,
    Categories,
    Values,
}

#[derive(Default)]
struct Series {
    name: String,
    categories: BTreeMap<u32, String>,
    values: BTreeMap<u32, String>,
}

fn chart_lines(xml: &str, part: &str) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut titles = 0usize;
    let mut title = String::new();
    let mut series: Option<Series> = None;
    let mut within: Option<In> = None;
    let mut point: u32 = 0;
    let mut in_value = false;
    walk_xml(xml, part, |ev| {
        match ev {
            Ev::Open(e) => match local(e) {
                "title" => titles += 1,
                "ser" => series = Some(Series::default()),
                "tx" if series.is_some() && titles == 0 => within = Some(In::Name),
                "cat" | "xVal" if series.is_some() => within = Some(In::Categories),
                "val" | "yVal" if series.is_some() => within = Some(In::Values),
                "pt" => point = super::attr(e, "idx").and_then(|i| i.parse().ok()).unwrap_or(0),
                "v" => in_value = true,
                _ => {}
            },
            Ev::Close(name) => match name {
                "title" => {
                    titles = titles.saturating_sub(1);
                    let text = super::squash(&std::mem::take(&mut title));
                    if titles == 0 && !text.is_empty() {
                        lines.push(text);
                    }
                }
                "tx" | "cat" | "xVal" | "val" | "yVal" => within = None,
                "v" => in_value = false,
                "ser" => lines.extend(series.take().and_then(series_line)),
                _ => {}
            },
            Ev::Text(t) if titles > 0 => title.push_str(t),
            Ev::Text(t) if in_value => {
                if let (Some(s), Some(w)) = (series.as_mut(), within) {
                    match w {
                        In::Name => s.name.push_str(t),
                        In::Categories => s.categories.entry(point).or_default().push_str(t),
                        In::Values => s.values.entry(point).or_default().push_str(t),
                    }
                }
            }
            Ev::Text(_) => {}
        }
        Ok(())
    })?;
    Ok(lines)
}

fn series_line(s: Series) -> Option<String> {
    let points: Vec<String> = s
        .values
        .iter()
        .take(MAX_POINTS)
        .map(|(idx, value)| match s.categories.get(idx) {
            Some(category) => format!("{} {}", category.trim(), value.trim()),
            None => value.trim().to_string(),
        })
        .collect();
    let name = s.name.trim();
    match (name.is_empty(), points.is_empty()) {
        (true, true) => None,
        (false, true) => Some(name.to_string()),
        (true, false) => Some(points.join(", ")),
        (false, false) => Some(format!("{name}: {}", points.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::Parsed;

    #[test]
    fn chart_series_become_lines() {
        let parsed = Parsed::of("pythonpptx__cht-charts.pptx");
        assert_eq!(
            parsed.pages[0].text,
            "Series 1: Category 1 4.3, Category 2 2.5, Category 3 3.5, Category 4 4.5\n\n\
             Series 2: Category 1 2.4, Category 2 4.4, Category 3 1.8, Category 4 2.8\n\n\
             Series 3: Category 1 2.0, Category 2 2.0, Category 3 3.0, Category 4 5.0"
        );
    }

    #[test]
    fn titles_axis_titles_and_unnamed_series() {
        let xml = r#"<c:chartSpace xmlns:c="c" xmlns:a="a"><c:chart><c:title><c:tx><c:rich><a:p><a:r><a:t>Budget</a:t></a:r><a:r><a:t> 2005</a:t></a:r></a:p></c:rich></c:tx></c:title><c:plotArea><c:lineChart>
<c:ser><c:val><c:numRef><c:numCache><c:pt idx="1"><c:v>7</c:v></c:pt><c:pt idx="0"><c:v>5</c:v></c:pt></c:numCache></c:numRef></c:val></c:ser></c:lineChart>
<c:valAx><c:title><c:tx><c:rich><a:p><a:r><a:t>Dollars</a:t></a:r></a:p></c:rich></c:tx></c:title></c:valAx></c:plotArea></c:chart></c:chartSpace>"#;
        assert_eq!(super::chart_lines(xml, "chart1.xml").unwrap(), ["Budget 2005", "5, 7", "Dollars"]);
    }
}
