//! JSON bodies as the store keeps them: as sent, without the whitespace
//! between tokens (numbers keep their text, keys their order, strings
//! their escapes), the same bytes whether a document came through the REST
//! API or from a dump.

/// Removes the whitespace between tokens of valid JSON.
#[must_use]
pub fn minify(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn minify_drops_whitespace_and_keeps_strings_and_numbers() {
        let input = br#" { "a b" : [ 1.5e3 , -0.0 ] , "q\" x" : "  " } "#;
        assert_eq!(super::minify(input), br#"{"a b":[1.5e3,-0.0],"q\" x":"  "}"#.to_vec());
    }
}
