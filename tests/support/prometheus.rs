//! A strict reader of the Prometheus text exposition format (0.0.4), for
//! the tests: it refuses what Prometheus would refuse and also what
//! `promtool check metrics` complains about (a family without HELP or
//! TYPE, a counter not ending in `_total`, a histogram whose buckets do not
//! rise to its count). Std only: the portal's unit tests include it too.

#![allow(dead_code)]

use std::collections::HashSet;

/// One metric family: its name, type and samples in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub samples: Vec<Sample>,
}

/// A sample's labels, in the order written.
pub type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parse a whole exposition, or say which line is wrong and why.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    if !text.ends_with('\n') {
        return Err("the text does not end with a newline".into());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut help_seen: HashSet<String> = HashSet::new();
    let mut series: HashSet<String> = HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", number + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest
                .split_once(' ')
                .ok_or_else(|| at("HELP without text".into()))?;
            check_metric_name(name).map_err(at)?;
            if !help_seen.insert(name.to_owned()) {
                return Err(at("a second HELP".into()));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without a type".into()))?;
            check_metric_name(name).map_err(at)?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(at(format!("unknown type {kind}")));
            }
            if families.iter().any(|f| f.name == name) {
                return Err(at("a second TYPE".into()));
            }
            if !help_seen.contains(name) {
                return Err(at("TYPE without HELP before it".into()));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(at("a counter's name should end in _total".into()));
            }
            families.push(Family {
                name: name.to_owned(),
                kind: kind.to_owned(),
                samples: Vec::new(),
            });
        } else if line.starts_with('#') || line.trim().is_empty() {
            return Err(at("a comment or blank line the portal never writes".into()));
        } else {
            let sample = parse_sample(line).map_err(at)?;
            let family = families
                .last_mut()
                .ok_or_else(|| at("a sample before any TYPE".into()))?;
            if !belongs(&sample.name, family) {
                return Err(at(format!("a sample outside its family {}", family.name)));
            }
            let key = format!("{}{:?}", sample.name, sorted(&sample.labels));
            if !series.insert(key) {
                return Err(at("the same series twice".into()));
            }
            family.samples.push(sample);
        }
    }
    for family in &families {
        if family.samples.is_empty() {
            return Err(format!("family {} has no samples", family.name));
        }
        if family.kind == "histogram" {
            check_histogram(family)?;
        }
        if family.kind == "counter" && family.samples.iter().any(|s| s.value < 0.0) {
            return Err(format!("counter {} is negative", family.name));
        }
    }
    Ok(families)
}

/// The value of the sample `name` with exactly `labels`, if present.
pub fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    families
        .iter()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == name && sorted(&s.labels) == sorted(&want))
        .map(|s| s.value)
}

fn sorted(labels: &[(String, String)]) -> Vec<(String, String)> {
    let mut labels = labels.to_vec();
    labels.sort();
    labels
}

fn belongs(sample: &str, family: &Family) -> bool {
    if family.kind != "histogram" {
        return sample == family.name;
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .any(|suffix| sample.strip_suffix(suffix) == Some(family.name.as_str()))
}

fn check_histogram(family: &Family) -> Result<(), String> {
    let name = &family.name;
    let mut last = 0.0;
    let mut last_bound = f64::NEG_INFINITY;
    let mut infinite = None;
    for sample in family
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket"))
    {
        let le = sample
            .labels
            .iter()
            .find(|(k, _)| k == "le")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("{name}: a bucket without le"))?;
        let bound = parse_value(le).map_err(|e| format!("{name}: le {e}"))?;
        if bound <= last_bound || sample.value < last {
            return Err(format!("{name}: buckets must rise (le {le})"));
        }
        (last_bound, last) = (bound, sample.value);
        if bound == f64::INFINITY {
            infinite = Some(sample.value);
        }
    }
    let count = value(std::slice::from_ref(family), &format!("{name}_count"), &[]);
    let sum = value(std::slice::from_ref(family), &format!("{name}_sum"), &[]);
    match (infinite, count, sum) {
        (Some(inf), Some(count), Some(_)) if inf == count => Ok(()),
        (None, ..) => Err(format!("{name}: no le=\"+Inf\" bucket")),
        _ => Err(format!(
            "{name}: _count and _sum missing or not the +Inf bucket"
        )),
    }
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with("__") {
        Ok(())
    } else {
        Err(format!("bad label name {name:?}"))
    }
}

/// `name{labels} value` (an optional timestamp is not written by the portal
/// and refused here).
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "a sample without a value".to_string())?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_string())?;
    if value.contains(' ') {
        return Err("more than a value after the labels".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value)?,
    })
}

/// Labels up to the closing brace; returns them and the text after it.
fn parse_labels(mut text: &str) -> Result<(Labels, &str), String> {
    let mut labels: Labels = Vec::new();
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after) = text
            .split_once("=\"")
            .ok_or_else(|| "a label without =\"".to_string())?;
        check_label_name(key)?;
        if labels.iter().any(|(k, _)| k == key) {
            return Err(format!("label {key} twice"));
        }
        let (value, after) = label_value(after)?;
        labels.push((key.to_owned(), value));
        text = match after.strip_prefix(',') {
            Some(next) if !next.starts_with('}') => next,
            Some(_) => return Err("a trailing comma".into()),
            None if after.starts_with('}') => after,
            None => return Err("labels not separated by commas".into()),
        };
    }
}

/// An escaped label value up to its closing quote.
fn label_value(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                _ => return Err("a bad escape in a label value".into()),
            },
            '\n' => return Err("a raw newline in a label value".into()),
            c => value.push(c),
        }
    }
    Err("an unterminated label value".into())
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text.starts_with(['+', '.'])
            || text.ends_with('.')
            || text
                .chars()
                .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            Err(format!("bad number {text:?}"))
        }
        _ => text.parse().map_err(|_| format!("bad number {text:?}")),
    }
}
