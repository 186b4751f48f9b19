"""SEN12MS-CR-TS, the multi-temporal benchmark, as its authors release it: names, ROIs and the
official split (:mod:`.names`), the index of a copy (:mod:`.index`), cloud coverage
(:mod:`.coverage`), the authors' pre-computed sample files (:mod:`.samples`), upstream's date
samplers (:mod:`.sampling`) and series samples (:mod:`.dataset`)."""
