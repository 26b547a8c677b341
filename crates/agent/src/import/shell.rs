//! Just enough of the shell to find the commands a crontab line runs: words (quotes and
//! escapes removed), split into simple commands at `;`, `&&`, `||`, `|`, `&` and parentheses,
//! with redirections and their targets dropped. It never fails: a line the shell would refuse
//! still gives its words, which is all the importer's naming needs.

/// The simple commands of `text`, in order, each as its words (none empty).
pub fn commands(text: &str) -> Vec<Vec<String>> {
    let mut lexer = Lexer { chars: text.chars().collect(), at: 0 };
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut skip_target = false;
    while let Some(token) = lexer.next() {
        match token {
            Token::Word(_) if skip_target => skip_target = false,
            Token::Word(w) => current.push(w),
            Token::Redirect { target_follows } => skip_target = target_follows,
            Token::Operator => {
                skip_target = false;
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

enum Token {
    Word(String),
    /// `>`, `2>>`, `<`, `&>`...; `target_follows` when the target is the next word (not
    /// attached, as in `2>&1`).
    Redirect {
        target_follows: bool,
    },
    /// `;`, `&&`, `||`, `|`, `&`, `(`, `)`, a newline, or a comment's end.
    Operator,
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn next(&mut self) -> Option<Token> {
        while self.peek(0).is_some_and(|c| c == ' ' || c == '\t') {
            self.at += 1;
        }
        let c = self.peek(0)?;
        match c {
            '\n' | ';' | '(' | ')' => {
                self.at += 1;
                return Some(Token::Operator);
            }
            '|' | '&' => {
                if c == '&' && self.peek(1) == Some('>') {
                    self.at += 2;
                    return Some(self.redirect());
                }
                self.at += 1;
                if matches!(self.peek(0), Some('|' | '&')) {
                    self.at += 1;
                }
                return Some(Token::Operator);
            }
            '#' => {
                while self.peek(0).is_some_and(|c| c != '\n') {
                    self.at += 1;
                }
                return Some(Token::Operator);
            }
            '<' | '>' => return Some(self.redirect()),
            _ => {}
        }
        // A file descriptor before a redirection: `2>`, `1>>`.
        let digits =
            (0..).take_while(|&i| self.peek(i).is_some_and(|c| c.is_ascii_digit())).count();
        if digits > 0 && matches!(self.peek(digits), Some('<' | '>')) {
            self.at += digits;
            return Some(self.redirect());
        }
        Some(Token::Word(self.word()))
    }

    /// At `<` or `>` (or just after `&>`): the operator, and whether its target follows as a
    /// word of its own.
    fn redirect(&mut self) -> Token {
        while matches!(self.peek(0), Some('<' | '>')) {
            self.at += 1;
        }
        if self.peek(0) == Some('&') {
            self.at += 1;
        }
        // `2>&1`, `>/dev/null`: the target is attached.
        let attached = self.peek(0).is_some_and(|c| !matches!(c, ' ' | '\t' | '\n'));
        if attached {
            self.word();
        }
        Token::Redirect { target_follows: !attached }
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\n' | ';' | '|' | '&' | '<' | '>' | '(' | ')' => break,
                '\'' => {
                    self.at += 1;
                    while let Some(c) = self.peek(0) {
                        self.at += 1;
                        if c == '\'' {
                            break;
                        }
                        word.push(c);
                    }
                }
                '"' => {
                    self.at += 1;
                    while let Some(c) = self.peek(0) {
                        self.at += 1;
                        match c {
                            '"' => break,
                            '\\' if matches!(self.peek(0), Some('"' | '\\' | '$' | '`')) => {
                                word.push(self.chars[self.at]);
                                self.at += 1;
                            }
                            c => word.push(c),
                        }
                    }
                }
                '\\' => {
                    self.at += 1;
                    if let Some(c) = self.peek(0) {
                        word.push(c);
                        self.at += 1;
                    }
                }
                '$' if self.peek(1) == Some('(') => {
                    // `$(...)` and `$((...))` stay in the word, parentheses and all.
                    let mut depth = 0;
                    while let Some(c) = self.peek(0) {
                        word.push(c);
                        self.at += 1;
                        match c {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                '`' => {
                    word.push(c);
                    self.at += 1;
                    while let Some(c) = self.peek(0) {
                        word.push(c);
                        self.at += 1;
                        if c == '`' {
                            break;
                        }
                    }
                }
                c => {
                    word.push(c);
                    self.at += 1;
                }
            }
        }
        word
    }
}

#[cfg(test)]
mod tests {
    use super::commands;

    fn words(text: &str) -> Vec<Vec<&'static str>> {
        commands(text)
            .into_iter()
            .map(|c| c.into_iter().map(|w| &*Box::leak(w.into_boxed_str())).collect())
            .collect()
    }

    #[test]
    fn splits_at_operators_and_drops_redirections() {
        assert_eq!(
            words("cd /srv && php artisan schedule:run >> /dev/null 2>&1"),
            [vec!["cd", "/srv"], vec!["php", "artisan", "schedule:run"]]
        );
        assert_eq!(
            words("test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }"),
            [
                vec!["test", "-x", "/usr/sbin/anacron"],
                vec!["{", "cd", "/"],
                vec!["run-parts", "--report", "/etc/cron.daily"],
                vec!["}"]
            ]
        );
        assert_eq!(words("a >/tmp/x 2>/dev/null b &> log c"), [vec!["a", "b", "c"]]);
        assert_eq!(words("mysqldump db | gzip > db.gz"), [vec!["mysqldump", "db"], vec!["gzip"]]);
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            words(r#"sh -c 'cd /x && ./run.sh' ; mail -s "nightly \"report\"" root"#),
            [
                vec!["sh", "-c", "cd /x && ./run.sh"],
                vec!["mail", "-s", "nightly \"report\"", "root"]
            ]
        );
        assert_eq!(
            words(r"echo a\ b $(date +%F) `id -u`"),
            [vec!["echo", "a b", "$(date +%F)", "`id -u`"]]
        );
        assert_eq!(words("unterminated 'quote"), [vec!["unterminated", "quote"]]);
    }
}
