//! The directory's status page: server-rendered HTML, no JavaScript, reloading
//! itself every 10 s.
//!
//! It shows no more than LIST_USERS and LIST_CONTENT show anyone: the
//! connected users with their address, and the names (never the
//! descriptions) of their publications. Every text from the store is
//! HTML-escaped.
//!
//! The search box follows SEARCH's meaning (PROTOCOL.md §6.2: every term a
//! prefix of a word, case-insensitive) over the file names of the connected
//! users, within the first [`VIEW_LIMIT`] names; descriptions, which the page
//! never shows, are not searched here.

use std::fmt::Write;

use p2p_proto::directory::{SearchQuery, matches};

use crate::directory::view::DirectoryView;

/// Connected users and file names read for one page (the search looks at
/// these only).
pub const VIEW_LIMIT: usize = 10_000;

/// Rows shown at most in each table of the page.
pub const PAGE_ROWS: usize = 1000;

/// Seconds between the page's own reloads.
const REFRESH_SECONDS: u32 = 10;

/// The page for `view`, with the rows matching `search` when one was asked.
#[must_use]
pub fn render_status_page(view: &DirectoryView, search: Option<&str>) -> String {
    let mut page = String::with_capacity(4096);
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    // Writing into a String cannot fail.
    let _ = write_page(&mut page, view, search);
    page
}

fn write_page(page: &mut String, view: &DirectoryView, search: Option<&str>) -> std::fmt::Result {
    let stats = view.stats;
    write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\n\
         <title>p2p-server status</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         th,td{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}</style>\n\
         </head>\n<body>\n<h1>p2p-server status</h1>\n\
         <table id=\"totals\">\n\
         <tr><th>Registered users</th><td id=\"total-users\">{}</td></tr>\n\
         <tr><th>Connected users</th><td id=\"total-connected\">{}</td></tr>\n\
         <tr><th>Publications</th><td id=\"total-publications\">{}</td></tr>\n\
         </table>\n",
        stats.users, stats.connected, stats.publications
    )?;

    write!(
        page,
        "<h2>Search file names</h2>\n\
         <form id=\"search\" method=\"get\" action=\"/\">\
         <input type=\"search\" name=\"q\" value=\"{}\" aria-label=\"words of file names\">\
         <button type=\"submit\">Search</button></form>\n\
         <p class=\"note\">As SEARCH: every term is the start of a word of the file name \
         (letters and digits), whatever the case; connected users only.</p>\n",
        Escaped(search.unwrap_or(""))
    )?;
    if let Some(search) = search {
        write_results(page, view, search)?;
    }

    page.push_str("<h2>Connected users</h2>\n");
    if !view.listed {
        page.push_str(
            "<p id=\"not-listed\">This store gives its totals only; the list of connected \
             users is not available yet.</p>\n",
        );
    } else if view.connected.is_empty() {
        page.push_str("<p id=\"no-users\">No user is connected.</p>\n");
    } else {
        page.push_str(
            "<table id=\"users\">\n<thead><tr><th>Name</th><th>Address</th>\
             <th>Publications</th></tr></thead>\n<tbody>\n",
        );
        for user in view.connected.iter().take(PAGE_ROWS) {
            writeln!(
                page,
                "<tr class=\"user\"><td class=\"name\">{}</td><td class=\"addr\">{}:{}</td>\
                 <td class=\"publications\">{}</td></tr>",
                Escaped(user.name.as_str()),
                user.addr.ip,
                user.addr.port,
                user.publications
            )?;
        }
        page.push_str("</tbody>\n</table>\n");
    }
    if !view.complete && view.listed || view.connected.len() > PAGE_ROWS {
        page.push_str("<p id=\"truncated\">Some users or file names are not shown.</p>\n");
    }
    page.push_str("</body>\n</html>\n");
    Ok(())
}

fn write_results(page: &mut String, view: &DirectoryView, search: &str) -> std::fmt::Result {
    let Ok(Ok(terms)) = SearchQuery::new(search).map(|query| query.terms()) else {
        return writeln!(
            page,
            "<p id=\"bad-query\">\u{201c}{}\u{201d} is not a search: give 1 to 8 words of \
             letters and digits.</p>",
            Escaped(search)
        );
    };
    let mut rows = 0;
    for user in &view.connected {
        for file in &user.files {
            if !matches(&terms, file.as_str(), "") {
                continue;
            }
            if rows == 0 {
                page.push_str(
                    "<table id=\"results\">\n<thead><tr><th>User</th><th>Address</th>\
                     <th>File</th></tr></thead>\n<tbody>\n",
                );
            }
            rows += 1;
            if rows > PAGE_ROWS {
                break;
            }
            writeln!(
                page,
                "<tr class=\"result\"><td class=\"name\">{}</td><td class=\"addr\">{}:{}</td>\
                 <td class=\"file\">{}</td></tr>",
                Escaped(user.name.as_str()),
                user.addr.ip,
                user.addr.port,
                Escaped(file.as_str())
            )?;
        }
    }
    if rows == 0 {
        writeln!(
            page,
            "<p id=\"no-results\">No file name matches \u{201c}{}\u{201d}.</p>",
            Escaped(search)
        )
    } else {
        page.push_str("</tbody>\n</table>\n");
        Ok(())
    }
}

/// Text written with `&`, `<`, `>`, `"` and `'` escaped: safe in element
/// content and in quoted attribute values.
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use p2p_proto::directory::PeerAddr;
    use p2p_proto::field::{FileName, UserName};

    use super::*;
    use crate::directory::StoreStats;
    use crate::directory::view::ConnectedUser;

    fn view() -> DirectoryView {
        let user = |name: &str, port, files: &[&str]| ConnectedUser {
            name: UserName::try_from(name).unwrap(),
            addr: PeerAddr {
                ip: [10, 0, 0, 1].into(),
                port,
            },
            publications: files.len(),
            files: files
                .iter()
                .map(|f| FileName::try_from(*f).unwrap())
                .collect(),
        };
        DirectoryView {
            stats: StoreStats {
                users: 3,
                connected: 2,
                publications: 3,
            },
            connected: vec![
                user("<b>ann</b>", 1, &["Song.MP3", "x&y.txt"]),
                user("bob", 2, &["notes.txt"]),
            ],
            complete: true,
            listed: true,
        }
    }

    #[test]
    fn everything_from_the_store_is_escaped() {
        let page = render_status_page(&view(), Some("\"><script>"));
        assert!(!page.contains("<b>"), "{page}");
        assert!(page.contains("&lt;b&gt;ann&lt;/b&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;\""));
        assert!(page.contains("id=\"bad-query\""));
    }

    #[test]
    fn the_search_has_searchs_meaning_over_file_names() {
        let page = render_status_page(&view(), Some("mp3"));
        assert_eq!(page.matches("class=\"result\"").count(), 1, "{page}");
        assert!(page.contains("<td class=\"file\">Song.MP3</td>"));
        let page = render_status_page(&view(), Some("TXT"));
        assert_eq!(page.matches("class=\"result\"").count(), 2);
        assert!(page.contains("<td class=\"file\">x&amp;y.txt</td>"));
        // User names are not searched; an infix is not a word's start.
        let page = render_status_page(&view(), Some("bob"));
        assert_eq!(page.matches("class=\"result\"").count(), 0);
        let page = render_status_page(&view(), Some("ong"));
        assert!(page.contains("id=\"no-results\""), "{page}");
    }

    #[test]
    fn without_a_search_the_page_lists_users_and_totals() {
        let page = render_status_page(&view(), None);
        assert!(!page.contains("id=\"results\""));
        assert_eq!(page.matches("class=\"user\"").count(), 2);
        assert!(page.contains("<td id=\"total-users\">3</td>"));
        assert!(page.contains("<td class=\"addr\">10.0.0.1:2</td>"));
        assert!(page.contains("http-equiv=\"refresh\""));
        assert!(!page.contains("<script"));
    }
}
