//! [`normalize`] is checked against real Node.js only: every input is run through
//! `JSON.stringify(JSON.parse(text))` by `node`, many per process, and the bytes must be equal.

use std::io::Write as _;
use std::process::{Command, Stdio};

use proptest::prelude::*;

use super::*;

/// What Node prints for each text (`None` where `JSON.parse` throws).
fn node_normalize(texts: &[String]) -> Vec<Option<String>> {
    const SCRIPT: &str = r#"
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((t) => {
    try { return JSON.stringify(JSON.parse(t)); } catch (e) { return null; }
  });
  process.stdout.write(JSON.stringify(out));
});
"#;
    let mut child = Command::new("node")
        .args(["-e", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (Node.js) must be installed: .ci/run installs it");
    let input = serde_json::to_vec(texts).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check_against_node(texts: &[String]) -> Result<(), TestCaseError> {
    let expected = node_normalize(texts);
    prop_assert_eq!(expected.len(), texts.len());
    for (text, want) in texts.iter().zip(expected) {
        let got = normalize(text.as_bytes())
            .ok()
            .map(|b| String::from_utf8(b).unwrap());
        prop_assert_eq!(got, want, "input {:?}", text);
    }
    Ok(())
}

#[test]
fn hand_picked_corners_match_node() {
    let texts = [
        "0",
        "-0",
        "-0.0",
        "0e5",
        "1e21",
        "1e+21",
        "123456789012345678901",
        "1e-7",
        "0.000001",
        "1.5e300",
        "1e400",
        "-1e400",
        "5e-324",
        "2e-324",
        "9007199254740993",
        "18446744073709551616",
        "-9223372036854775809",
        "0.1",
        "100",
        "1E2",
        "1.0",
        "3.14159e0",
        "123e-20",
        "4.35",
        "0.3",
        "17976931348623157e292",
        r#""\u00e9\ud83d\ude00 \u2028\u2029 \u007f \u0000\u001f \/ \b\f\n\r\t""#,
        r#""\ud800""#,
        r#""\udc00x\ud800""#,
        r#""é😀""#,
        r#"{"b":1,"a":2,"1":3,"0":4,"01":5,"-1":6,"4294967294":7,"4294967295":8,"10":9}"#,
        r#"{"a":1,"b":2,"a":3}"#,
        r#"{"2":1,"1":2,"2":3}"#,
        r#"{"__proto__":{"x":1},"y":2}"#,
        r#" { "k" : [ 1 , 2.50 , { } , [ ] , null , true , false ] } "#,
        r#"{"event":"x","specs":{"price_per_hr":1.71,"gpu_count":1},"event":"y"}"#,
        "[1,]",
        "{\"a\" 1}",
        "01",
        "1.",
        "-",
        "\"\t\"",
        "nul",
        "[1] x",
        "",
    ];
    check_against_node(&texts.map(String::from)).unwrap();
}

fn ws() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "", "", " ", "\n", "\t ", "\r\n  "]).prop_map(String::from)
}

fn number() -> impl Strategy<Value = String> {
    let digits = |n| {
        prop::collection::vec(0u8..10, 1..n)
            .prop_map(|d| d.iter().map(|d| char::from(b'0' + d)).collect::<String>())
    };
    let text = (
        any::<bool>(),
        digits(26),
        prop::option::of(digits(20)),
        prop::option::of((
            prop::sample::select(vec!["e", "E", "e+", "e-", "E-"]),
            0u32..400,
        )),
    )
        .prop_map(|(neg, int, frac, exp)| {
            let int = int.trim_start_matches('0');
            let mut s = String::new();
            if neg {
                s.push('-');
            }
            s.push_str(if int.is_empty() { "0" } else { int });
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if let Some((e, n)) = exp {
                s.push_str(e);
                s.push_str(&n.to_string());
            }
            s
        });
    let float = any::<f64>()
        .prop_filter("finite", |f| f.is_finite())
        .prop_flat_map(|f| {
            prop::sample::select(vec![format!("{f}"), format!("{f:e}"), format!("{f:?}")])
        })
        .prop_map(|s| s.replace("inf", "1e999"));
    let int = any::<i64>().prop_map(|i| i.to_string());
    prop_oneof![text, float, int]
}

fn string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(|c| match c {
            '"' => "\\\"".to_owned(),
            '\\' => "\\\\".to_owned(),
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        }),
        any::<u16>().prop_map(|u| format!("\\u{u:04X}")),
        (0xd800u16..0xe000).prop_map(|u| format!("\\u{u:04x}")),
        prop::sample::select(vec![
            "\\n", "\\t", "\\/", "\\b", "\\f", "\\r", "\\\"", "é", "😀"
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| format!("\"{}\"", p.concat()))
}

fn key() -> impl Strategy<Value = String> {
    let picked = prop::sample::select(vec![
        "0",
        "1",
        "2",
        "10",
        "01",
        "-1",
        "1.0",
        "4294967294",
        "4294967295",
        "99999999999",
        "a",
        "b",
        "id",
        "__proto__",
        "",
        "é",
    ])
    .prop_map(|k| format!("\"{k}\""));
    prop_oneof![
        picked,
        (0u32..200).prop_map(|n| format!("\"{n}\"")),
        string()
    ]
}

fn json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        number(),
        string(),
        prop::sample::select(vec!["null", "true", "false"]).prop_map(String::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            (prop::collection::vec((ws(), inner.clone()), 0..8), ws()).prop_map(|(items, w)| {
                let items: Vec<String> =
                    items.into_iter().map(|(w, v)| format!("{w}{v}")).collect();
                format!("[{}{w}]", items.join(","))
            }),
            (prop::collection::vec((key(), ws(), inner), 0..8), ws()).prop_map(|(members, w)| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, w, v)| format!("{k}{w}:{w}{v}"))
                    .collect();
                format!("{{{}{w}}}", members.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// 24 Node processes of 250 random documents each.
    #[test]
    fn random_json_matches_node(texts in prop::collection::vec(
        (ws(), json(), ws()).prop_map(|(a, v, b)| format!("{a}{v}{b}")), 250)) {
        check_against_node(&texts)?;
        // What hookd sends is a fixed point: a verifier re-printing it gets the same bytes.
        let sent: Vec<String> = texts
            .iter()
            .filter_map(|t| normalize(t.as_bytes()).ok())
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        for (s, again) in sent.iter().zip(node_normalize(&sent)) {
            prop_assert_eq!(Some(s), again.as_ref());
        }
    }

    #[test]
    fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = normalize(&bytes);
    }
}

/// Parsing and printing recurse once per level, bounded by `MAX_DEPTH`: on a quarter of a tokio
/// worker's stack (2 MiB) the deepest accepted document still prints, and anything deeper,
/// however deep, is refused rather than overflowing.
#[test]
fn depth_is_bounded_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(|| {
            for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
                let at_limit = format!("{}0{}", open.repeat(MAX_DEPTH), close.repeat(MAX_DEPTH));
                assert_eq!(normalize(at_limit.as_bytes()).unwrap(), at_limit.as_bytes());
                let over = format!(
                    "{}0{}",
                    open.repeat(MAX_DEPTH + 1),
                    close.repeat(MAX_DEPTH + 1)
                );
                assert!(normalize(over.as_bytes()).is_err());
                let hostile = open.repeat(100_000);
                assert!(normalize(hostile.as_bytes()).is_err());
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
