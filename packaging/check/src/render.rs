//! A renderer for exactly the subset of Helm's Go templates that
//! `packaging/helm/nodewarden` uses. No helm binary can be installed on the CI
//! machine (it is in none of the package registries it reaches), so CI renders the
//! chart with this and checks the result; anything outside the subset is an error,
//! never a silent guess. The subset:
//!
//! - text, and actions `{{ … }}` with Go's trim markers: `{{- ` removes all
//!   whitespace (spaces, tabs, newlines) before the action, ` -}}` all after it;
//! - comments `{{/* … */}}`;
//! - `{{ if PIPELINE }} … {{ else }} … {{ end }}` (no `else if`, no `with`,
//!   `range`, `define`, `include`, variables); truthiness as in Go templates:
//!   false, 0, "", null and empty lists/maps are false;
//! - pipelines `ARG`, `FUNC ARG…` and `… | FUNC ARG…` (the value on the left is the
//!   last argument), where an ARG is a field path (`.Values.a.b`, `.Release.Namespace`,
//!   `.Chart.AppVersion`) or an integer;
//! - functions `toYaml` (block YAML, keys sorted, no trailing newline, as Helm),
//!   `nindent N`, `indent N` (every line, empty ones too, as Helm), `quote`;
//! - printing a string, integer or bool. A missing value is an error (Helm would
//!   print `<no value>`), and so is printing a map or list (use `toYaml`).

use serde_json::Value;

#[derive(Debug)]
enum Node {
    Text(String),
    Print(String),
    If(String, Vec<Node>, Vec<Node>),
}

/// Render `template` with the context `ctx` (`{"Values": …, "Release": {…}, "Chart": {…}}`).
pub fn render(template: &str, ctx: &Value) -> Result<String, String> {
    let tokens = lex(template)?;
    let mut it = tokens.into_iter().peekable();
    let (nodes, end) = parse(&mut it)?;
    if let Some(e) = end {
        return Err(format!("unexpected {{{{ {e} }}}} at top level"));
    }
    let mut out = String::new();
    exec(&nodes, ctx, &mut out)?;
    Ok(out)
}

#[derive(Debug)]
enum Tok {
    Text(String),
    Action(String),
}

fn lex(t: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut rest = t;
    let mut trim_next = false;
    while !rest.is_empty() {
        let (text, after) = match rest.find("{{") {
            Some(i) => (&rest[..i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
        let mut text = text.to_string();
        if trim_next {
            text = text.trim_start().to_string();
        }
        let Some(after) = after else {
            toks.push(Tok::Text(text));
            break;
        };
        let (body, trim_left) = match after.strip_prefix("- ") {
            Some(b) => (b, true),
            None if after.starts_with('-') => {
                return Err("`{{-` must be followed by a space".into());
            }
            None => (after, false),
        };
        if trim_left {
            text = text.trim_end().to_string();
        }
        toks.push(Tok::Text(text));
        let close = body
            .find("}}")
            .ok_or_else(|| "unterminated {{".to_string())?;
        let mut action = &body[..close];
        rest = &body[close + 2..];
        trim_next = false;
        if let Some(a) = action.strip_suffix(" -") {
            action = a;
            trim_next = true;
        }
        let action = action.trim();
        if action.starts_with("/*") {
            if !action.ends_with("*/") {
                return Err(format!("malformed comment {{{{{action}}}}}"));
            }
            continue;
        }
        toks.push(Tok::Action(action.to_string()));
    }
    Ok(toks)
}

type Toks = std::iter::Peekable<std::vec::IntoIter<Tok>>;

/// Parse until `else`/`end` (returned) or the end of input.
fn parse(it: &mut Toks) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(t) = it.next() {
        match t {
            Tok::Text(s) => {
                if !s.is_empty() {
                    nodes.push(Node::Text(s));
                }
            }
            Tok::Action(a) => {
                let word = a.split_whitespace().next().unwrap_or("");
                match word {
                    "if" => {
                        let cond = a[2..].trim().to_string();
                        let (then, end) = parse(it)?;
                        let (els, end) = match end.as_deref() {
                            Some("else") => {
                                let (els, end2) = parse(it)?;
                                (els, end2)
                            }
                            _ => (Vec::new(), end),
                        };
                        if end.as_deref() != Some("end") {
                            return Err(format!("{{{{ if {cond} }}}} without {{{{ end }}}}"));
                        }
                        nodes.push(Node::If(cond, then, els));
                    }
                    "else" if a == "else" => return Ok((nodes, Some("else".into()))),
                    "end" if a == "end" => return Ok((nodes, Some("end".into()))),
                    "else" | "range" | "with" | "define" | "template" | "block" | "include"
                    | "tpl" => {
                        return Err(format!(
                            "{{{{ {a} }}}}: outside the template subset this renderer supports"
                        ));
                    }
                    _ if a.contains('$') || a.contains(":=") || a.contains('(') => {
                        return Err(format!(
                            "{{{{ {a} }}}}: variables and parentheses are outside the subset"
                        ));
                    }
                    _ => nodes.push(Node::Print(a)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn exec(nodes: &[Node], ctx: &Value, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(s) => out.push_str(s),
            Node::Print(p) => out.push_str(&print(&pipeline(p, ctx)?, p)?),
            Node::If(c, then, els) => {
                if truthy(&pipeline(c, ctx)?) {
                    exec(then, ctx, out)?;
                } else {
                    exec(els, ctx, out)?;
                }
            }
        }
    }
    Ok(())
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn print(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        other => Err(format!(
            "{{{{ {what} }}}} prints {other}: only strings, integers and bools (use toYaml)"
        )),
    }
}

fn arg(word: &str, ctx: &Value) -> Result<Value, String> {
    if let Ok(i) = word.parse::<i64>() {
        return Ok(Value::from(i));
    }
    let Some(path) = word.strip_prefix('.') else {
        return Err(format!(
            "argument {word:?}: only field paths (.Values.x) and integers are supported"
        ));
    };
    let mut v = ctx;
    for part in path.split('.') {
        v = v
            .get(part)
            .ok_or_else(|| format!("{word}: no such value ({part:?} missing)"))?;
    }
    Ok(v.clone())
}

fn pipeline(p: &str, ctx: &Value) -> Result<Value, String> {
    let mut acc: Option<Value> = None;
    for cmd in p.split('|') {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let Some((&head, rest)) = words.split_first() else {
            return Err(format!("empty command in {p:?}"));
        };
        let mut args: Vec<Value> = rest.iter().map(|w| arg(w, ctx)).collect::<Result<_, _>>()?;
        if head.starts_with('.') || head.parse::<i64>().is_ok() {
            if !rest.is_empty() || acc.is_some() {
                return Err(format!("{p:?}: a value cannot take arguments"));
            }
            acc = Some(arg(head, ctx)?);
            continue;
        }
        if let Some(prev) = acc.take() {
            args.push(prev);
        }
        acc = Some(call(head, &args).map_err(|e| format!("{p:?}: {e}"))?);
    }
    acc.ok_or_else(|| format!("empty pipeline {p:?}"))
}

fn int_arg(v: &Value) -> Result<usize, String> {
    v.as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| format!("{v} is not a count"))
}

fn str_arg(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => print(other, "argument"),
    }
}

fn call(f: &str, args: &[Value]) -> Result<Value, String> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{f} takes {n} argument(s), got {}", args.len()))
        }
    };
    match f {
        "toYaml" => {
            want(1)?;
            Ok(Value::String(to_yaml(&args[0])))
        }
        "quote" => {
            want(1)?;
            Ok(Value::String(
                serde_json::to_string(&str_arg(&args[0])?).unwrap(),
            ))
        }
        "indent" | "nindent" => {
            want(2)?;
            let pad = " ".repeat(int_arg(&args[0])?);
            let s = str_arg(&args[1])?;
            let body = format!("{pad}{}", s.replace('\n', &format!("\n{pad}")));
            Ok(Value::String(if f == "nindent" {
                format!("\n{body}")
            } else {
                body
            }))
        }
        other => Err(format!(
            "function {other:?} is outside the supported subset"
        )),
    }
}

/// Block-style YAML as Helm's `toYaml` writes it (keys sorted, no trailing newline).
/// Strings are written plain when that reads back as the same string, else
/// double-quoted (JSON escapes are valid YAML).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    write_yaml(v, 0, &mut out);
    out.trim_end_matches('\n').to_string()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "./_-".contains(c))
                && !s.starts_with(['-', '.'])
                && s.parse::<f64>().is_err()
                && !matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
                );
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap()
            }
        }
        Value::Null => "null".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        other => other.to_string(),
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn write_yaml(v: &Value, ind: usize, out: &mut String) {
    let pad = " ".repeat(ind);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                let val = &m[k];
                let key = scalar(&Value::String(k.clone()));
                if is_block(val) {
                    out.push_str(&format!("{pad}{key}:\n"));
                    let child = if val.is_array() { ind } else { ind + 2 };
                    write_yaml(val, child, out);
                } else {
                    out.push_str(&format!("{pad}{key}: {}\n", scalar(val)));
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for x in a {
                if is_block(x) {
                    let mut inner = String::new();
                    write_yaml(x, ind + 2, &mut inner);
                    // "- " replaces the first line's indentation
                    let first = inner.split_off(ind + 2);
                    out.push_str(&format!("{pad}- {first}"));
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(x)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({"Values": {"a": {"b": "x"}, "on": true, "off": false, "n": 3, "empty": "",
                "res": {"requests": {"cpu": "20m"}, "limits": {"memory": "64Mi"}},
                "text": "l1\nl2\n", "list": [{"k": "v", "o": 1}, "s"]},
               "Release": {"Namespace": "ns"}})
    }

    #[test]
    fn prints_and_trims_like_go_templates() {
        let c = ctx();
        assert_eq!(render("a: {{ .Values.a.b }}\n", &c).unwrap(), "a: x\n");
        assert_eq!(render("a:\n  {{- .Values.n }}\n", &c).unwrap(), "a:3\n");
        assert_eq!(render("a: {{ .Values.n -}}\n  b\n", &c).unwrap(), "a: 3b\n");
        assert_eq!(render("{{/* c */}}x", &c).unwrap(), "x");
        assert_eq!(render("{{ .Values.a.b | quote }}", &c).unwrap(), "\"x\"");
        assert_eq!(
            render("ns: {{ .Release.Namespace }}", &c).unwrap(),
            "ns: ns"
        );
    }

    #[test]
    fn conditionals() {
        let c = ctx();
        let t = "a\n{{- if .Values.on }}\nb\n{{- else }}\nc\n{{- end }}\nd\n";
        assert_eq!(render(t, &c).unwrap(), "a\nb\nd\n");
        let t = "a\n{{- if .Values.off }}\nb\n{{- else }}\nc\n{{- end }}\nd\n";
        assert_eq!(render(t, &c).unwrap(), "a\nc\nd\n");
        let t = "{{ if .Values.empty }}y{{ end }}{{ if .Values.n }}n{{ end }}";
        assert_eq!(render(t, &c).unwrap(), "n");
    }

    #[test]
    fn indent_and_to_yaml_like_helm() {
        let c = ctx();
        assert_eq!(
            render("r:\n  {{- toYaml .Values.res | nindent 2 }}\n", &c).unwrap(),
            "r:\n  limits:\n    memory: 64Mi\n  requests:\n    cpu: 20m\n"
        );
        // Helm's indent pads every line, the empty one after a final newline too
        assert_eq!(
            render("{{ .Values.text | indent 2 }}", &c).unwrap(),
            "  l1\n  l2\n  "
        );
        assert_eq!(to_yaml(&c["Values"]["list"]), "- k: v\n  o: 1\n- s");
        assert_eq!(
            to_yaml(&json!({"a": "true", "b": "10%", "c": []})),
            "a: \"true\"\nb: \"10%\"\nc: []"
        );
    }

    #[test]
    fn outside_the_subset_is_an_error() {
        let c = ctx();
        for t in [
            "{{ range .Values.list }}x{{ end }}",
            "{{ include \"x\" . }}",
            "{{ $x := 1 }}",
            "{{ .Values.missing }}",
            "{{ .Values.res }}",
            "{{ upper .Values.a.b }}",
            "{{ if .Values.on }}x",
            "{{ else if .Values.on }}",
            "{{-.Values.n }}",
        ] {
            assert!(render(t, &c).is_err(), "{t} should be rejected");
        }
    }
}
