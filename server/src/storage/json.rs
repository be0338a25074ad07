//! JSON bodies as the store keeps them: as sent, without the whitespace
//! between tokens (numbers keep their text, keys their order, strings
//! their escapes), the same bytes whether a document came through the REST
//! API or from a dump.

/// Removes the whitespace between tokens of valid JSON.
///
/// Strings are copied a run at a time: `memchr` finds their next quote or
/// backslash, so a body made mostly of strings costs about a copy.
#[must_use]
pub fn minify(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut at = 0;
    while let Some(&b) = json.get(at) {
        at += 1;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        out.push(b);
        if b == b'"' {
            at = copy_string(json, at, &mut out);
        }
    }
    out
}

/// Copies the rest of a string that starts at `at` (after its opening
/// quote) up to and including its closing quote; returns where it ends.
fn copy_string(json: &[u8], mut at: usize, out: &mut Vec<u8>) -> usize {
    while let Some(found) = memchr::memchr2(b'"', b'\\', &json[at..]) {
        let special = at + found;
        if json[special] == b'"' {
            out.extend_from_slice(&json[at..=special]);
            return special + 1;
        }
        // A backslash and the byte it escapes, whatever that byte is.
        let escaped = (special + 2).min(json.len());
        out.extend_from_slice(&json[at..escaped]);
        at = escaped;
    }
    out.extend_from_slice(&json[at..]);
    json.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn minify_drops_whitespace_and_keeps_strings_and_numbers() {
        let input = br#" { "a b" : [ 1.5e3 , -0.0 ] , "q\" x" : "  " } "#;
        assert_eq!(super::minify(input), br#"{"a b":[1.5e3,-0.0],"q\" x":"  "}"#.to_vec());
    }

    #[test]
    fn escapes_at_a_string_s_edges_and_at_the_end_are_kept() {
        let cases: [(&[u8], &[u8]); 5] = [
            (br#"{ "k" : "\\" , "e" : "" }"#, br#"{"k":"\\","e":""}"#),
            (br#"[ "\" \\ \n " , "x y" ]"#, br#"["\" \\ \n ","x y"]"#),
            (br#"{"a":"\u00e9 \t"}"#, br#"{"a":"\u00e9 \t"}"#),
            // Cut short: copied as far as it goes (never read past the end).
            (br#"{"a":"b \"#, br#"{"a":"b \"#),
            (br#"{"a":"b  "#, br#"{"a":"b  "#),
        ];
        for (input, minified) in cases {
            assert_eq!(super::minify(input), minified.to_vec(), "{}", String::from_utf8_lossy(input));
        }
    }

    /// The byte-at-a-time form `minify` replaced: the meaning it must keep.
    fn one_byte_at_a_time(json: &[u8]) -> Vec<u8> {
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

    #[test]
    fn any_mix_of_quotes_escapes_and_whitespace_minifies_as_one_byte_at_a_time_did() {
        const ALPHABET: &[u8] = b"\"\\ \t\n\ra{}:,1";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for length in 0..4000 {
            let input: Vec<u8> = (0..length % 97)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ALPHABET[(state % ALPHABET.len() as u64) as usize]
                })
                .collect();
            assert_eq!(super::minify(&input), one_byte_at_a_time(&input), "{}", String::from_utf8_lossy(&input));
        }
    }
}
