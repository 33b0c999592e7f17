//! The events of a provider's server-sent-event stream, as they complete: each event's `data`
//! lines joined, bounded in size, whatever the line endings (LF or CRLF) and however the bytes
//! are split.

use bytes::{BufMut, Bytes, BytesMut};

use super::StreamError;

/// Splits a byte stream into events.
pub struct EventSplitter {
    max_event: usize,
    partial: BytesMut,
}

impl EventSplitter {
    /// Events of at most `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            max_event,
            partial: BytesMut::new(),
        }
    }

    /// Hands `on_event` the `data` of each event `bytes` completes, as it completes (events
    /// without data are skipped), so the first failure is the same however the bytes are split.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(&str) -> Result<(), StreamError>,
    ) -> Result<(), StreamError> {
        for &byte in bytes {
            self.partial.put_u8(byte);
            if self.partial.len() > self.max_event {
                return Err(StreamError::EventTooLarge(self.max_event));
            }
            if byte == b'\n'
                && (self.partial.ends_with(b"\n\n") || self.partial.ends_with(b"\n\r\n"))
            {
                let event = self.partial.split();
                let text = std::str::from_utf8(&event).map_err(|_| StreamError::Malformed)?;
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(value) = line.strip_prefix("data:") {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if !data.is_empty() {
                    on_event(&data)?;
                }
            }
        }
        Ok(())
    }
}

/// The output a stream translator writes for the next `bytes` of its input: the translator's own
/// `splitter` frames the events, and `on_event` writes each one's output as it completes.
pub fn translate_events<T>(
    translator: &mut T,
    splitter: fn(&mut T) -> &mut EventSplitter,
    bytes: &[u8],
    mut on_event: impl FnMut(&mut T, &str, &mut BytesMut) -> Result<(), StreamError>,
) -> Result<Bytes, StreamError> {
    let mut out = BytesMut::new();
    // The splitter is taken out of the translator while it hands the translator its events.
    let mut events = std::mem::replace(splitter(translator), EventSplitter::new(0));
    let fed = events.feed(bytes, |data| on_event(translator, data, &mut out));
    *splitter(translator) = events;
    fed?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(splitter: &mut EventSplitter, bytes: &[u8]) -> Result<Vec<String>, StreamError> {
        let mut events = Vec::new();
        splitter.feed(bytes, |data| {
            events.push(data.to_string());
            Ok(())
        })?;
        Ok(events)
    }

    #[test]
    fn events_complete_at_a_blank_line_whatever_the_line_endings_and_splits() {
        let stream = b"event: a\ndata: {\"x\":1}\n\ndata: one\r\ndata: two\r\n\r\n: comment\n\n";
        let mut whole = EventSplitter::new(1024);
        assert_eq!(
            events(&mut whole, stream).unwrap(),
            ["{\"x\":1}", "one\ntwo"]
        );
        let mut split = EventSplitter::new(1024);
        let mut all = Vec::new();
        for byte in stream {
            all.extend(events(&mut split, &[*byte]).unwrap());
        }
        assert_eq!(all, ["{\"x\":1}", "one\ntwo"]);
    }

    #[test]
    fn an_event_over_the_limit_is_an_error() {
        let mut splitter = EventSplitter::new(8);
        assert_eq!(
            events(&mut splitter, b"data: 123456789").unwrap_err(),
            StreamError::EventTooLarge(8)
        );
    }
}
