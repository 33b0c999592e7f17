use std::time::Duration;

use agentgateway_mock_llm::{Fault, FaultParseError};

fn parse(spec: &str) -> Result<Fault, FaultParseError> {
    spec.parse()
}

#[test]
fn single_faults_parse() {
    assert_eq!(parse("status=503").unwrap(), Fault::status(503));
    assert_eq!(parse("reset").unwrap(), Fault::Reset);
    assert_eq!(parse("stall").unwrap(), Fault::Stall);
    assert_eq!(parse("cut-after=3").unwrap(), Fault::CutAfter(3));
    assert_eq!(parse("error-after=2").unwrap(), Fault::ErrorAfter(2));
    assert_eq!(
        parse("delay-ms=500").unwrap(),
        Fault::Delay(Duration::from_millis(500))
    );
    assert_eq!(
        parse("chunk-delay-ms=50").unwrap(),
        Fault::ChunkDelay(Duration::from_millis(50))
    );
}

#[test]
fn status_options_attach_to_the_status_in_any_order() {
    let expected = Fault::status(429).with_retry_after("3");
    assert_eq!(parse("status=429;retry-after=3").unwrap(), expected);
    assert_eq!(parse(" retry-after = 3 ; status=429 ;").unwrap(), expected);
    assert_eq!(
        parse("status=429;body=insufficient_quota").unwrap(),
        Fault::status(429).with_error_type("insufficient_quota")
    );
    let date = "status=503;retry-after=Wed, 21 Oct 2015 07:28:00 GMT";
    assert_eq!(
        parse(date).unwrap(),
        Fault::status(503).with_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")
    );
}

#[test]
fn combined_specs_become_all_and_display_round_trips() {
    let fault = parse("status=500;delay-ms=20").unwrap();
    assert_eq!(
        fault,
        Fault::delay(Duration::from_millis(20)).and(Fault::status(500))
    );
    for spec in [
        "delay-ms=20;status=500",
        "status=429;retry-after=3;body=insufficient_quota",
        "delay-ms=5;chunk-delay-ms=7;cut-after=2",
        "chunk-delay-ms=1;error-after=4",
        "reset",
    ] {
        assert_eq!(parse(spec).unwrap().to_string(), spec);
        assert_eq!(
            parse(&parse(spec).unwrap().to_string()).unwrap(),
            parse(spec).unwrap()
        );
    }
}

#[test]
fn invalid_specs_are_rejected_with_a_reason() {
    assert_eq!(parse(""), Err(FaultParseError::Empty));
    assert_eq!(parse(" ; "), Err(FaultParseError::Empty));
    assert_eq!(
        parse("explode"),
        Err(FaultParseError::UnknownKey("explode".into()))
    );
    assert_eq!(
        parse("status"),
        Err(FaultParseError::MissingValue("status".into()))
    );
    assert_eq!(
        parse("status="),
        Err(FaultParseError::MissingValue("status".into()))
    );
    assert!(matches!(
        parse("status=abc"),
        Err(FaultParseError::InvalidValue { .. })
    ));
    assert!(matches!(
        parse("status=99"),
        Err(FaultParseError::InvalidValue { .. })
    ));
    assert!(matches!(
        parse("status=700"),
        Err(FaultParseError::InvalidValue { .. })
    ));
    assert!(matches!(
        parse("delay-ms=-1"),
        Err(FaultParseError::InvalidValue { .. })
    ));
    assert!(matches!(
        parse("body=has space;status=429"),
        Err(FaultParseError::InvalidValue { .. })
    ));
    assert_eq!(
        parse("reset=1"),
        Err(FaultParseError::UnexpectedValue("reset".into()))
    );
    assert_eq!(
        parse("retry-after=3"),
        Err(FaultParseError::NeedsStatus("retry-after"))
    );
    assert_eq!(parse("body=x"), Err(FaultParseError::NeedsStatus("body")));
    assert_eq!(
        parse("delay-ms=1;delay-ms=2"),
        Err(FaultParseError::Duplicate("delay-ms".into()))
    );
    assert_eq!(
        parse("reset;stall"),
        Err(FaultParseError::Conflict("reset".into(), "stall".into()))
    );
    assert_eq!(
        parse("cut-after=1;error-after=2"),
        Err(FaultParseError::Conflict(
            "cut-after".into(),
            "error-after".into()
        ))
    );
    assert!(matches!(
        parse("status=500;cut-after=1"),
        Err(FaultParseError::Conflict(..))
    ));
    let msg = parse("nope=1").unwrap_err().to_string();
    assert!(msg.contains("nope"), "{msg}");
}
