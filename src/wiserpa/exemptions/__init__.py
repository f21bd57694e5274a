"""Time-sensitive care exemptions (R1): the retrospective audit of exempt requests and its report."""
