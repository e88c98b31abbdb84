"""Writes the .docx sample transcript as a word processor would save it: one paragraph per
line, bold speaker labels, a title and a table-free body. Run: python scripts/make_docx.py
"""

from __future__ import annotations

from pathlib import Path

import docx

ROOT = Path(__file__).resolve().parent.parent / "transcripts"

LEAD_02 = """
Interviewer: To begin, could you tell me about your organisation?
Respondent: We're an employability charity. We've been going since the late nineties, originally set up by a group of probation officers who were frustrated that nobody was helping people into work after prison. Now we've got about sixty staff across four sites, and we run a mix of contracts: some from the government's employment programmes, some from the local authority, and quite a lot of trust funding for the more specialist stuff.
Respondent: Our particular strength is employer engagement. We've got relationships with about two hundred employers who are willing to take on someone with a conviction, which took years to build. That's really what we brought to the partnership.
Interviewer: How did the partnership come together?
Respondent: It was a bit of a scramble, if I'm honest. We heard about the fund quite late, through a newsletter, and by the time we'd had the board discussion there were, I think, five weeks left. So we rang round. Some organisations had already committed elsewhere. A couple of the ones we would really have liked, a peer mentoring group in particular, said they'd love to but they simply couldn't produce the paperwork in that time.
Respondent: I wouldn't say the timescale ruined anything, but it meant the partnership was shaped by who was available rather than who was best. And the conversations about how we'd actually work together, the really important ones about referral routes and who holds the risk, kept getting parked because we had to get the budget finished.
Interviewer: What about the local authority's involvement?
Respondent: They were supportive, genuinely. But there was a real issue with who came to the table. The council kept sending different officers, and none of them could commit the council to anything. Every time we got close to a decision, it was, I'll need to check with my head of service. At one point I asked, quite directly, can we have someone who can say yes, and it was a bit awkward. To be fair to the council, they were going through a restructure and people were leaving all the time.
Respondent: We also had our own staffing issue. The development manager who'd done most of the work on the bid got a job elsewhere two weeks after we were funded, and we had to recruit, which took three months. So there was a gap there.
Interviewer: How did you find working with the other voluntary organisations?
Respondent: Mostly very positive. There's one thing I'd mention, which is that employability is quite a crowded market. At least two of our partners run employment programmes that are, in a sense, in competition with ours. And at the same time as we were developing the partnership, the government's big employment contract was being re-tendered, and we were on opposite sides of that. So it's hard to be completely open about, say, your employer list, when the person you're sharing it with might use it against you in a tender next month.
Interviewer: Did that cause problems in practice?
Respondent: It made people guarded. I think we got past it, because the people involved were sensible, but it took time and trust. We agreed early on that the employer relationships would stay with whoever brought them, which settled things down.
Interviewer: Can you tell me about the service as it runs now?
Respondent: Participants get an employment adviser who works with them from about three months before release. We do CV work, disclosure coaching, which is how to talk about your conviction with an employer, and then job matching. We've got a small fund for work clothes, tools, travel passes for the first month, that sort of thing. Partners provide the housing support and the mentoring, so the adviser isn't trying to do everything.
Respondent: We've had just over a hundred people through in the first eighteen months, and about a third are in work at six months after release. That's well above what you'd normally expect. The employers have been great; a couple have taken on three or four people each now.
Interviewer: Were the expectations of the fund clear to you?
Respondent: Mostly. I think the eligible costs were a grey area. We weren't sure whether we could pay partners for time spent on governance, and we asked, and I don't think we ever got a definitive answer.
Interviewer: What will happen when the funding finishes?
Respondent: I genuinely don't know. We're building the evidence, and we'll take it to anyone who'll listen. Part of me hopes the employment side can be folded into the next national contract. But the wraparound support, the mentoring and housing, I can't see where that money comes from.
Interviewer: Thank you. Is there anything else?
Respondent: Only that the participants deserve better than a three-year pilot. Whatever we build, it needs to last.
"""


def main() -> None:
    document = docx.Document()
    document.add_heading("Interview transcript: lead organisation (employability charity)", level=1)
    for line in LEAD_02.strip().splitlines():
        speaker, _, text = line.partition(": ")
        paragraph = document.add_paragraph()
        paragraph.add_run(f"{speaker}:").bold = True
        paragraph.add_run(f" {text}")
    document.core_properties.author = "qualcode sample"
    document.save(ROOT / "lead-02.docx")


if __name__ == "__main__":
    main()
