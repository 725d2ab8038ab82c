"""The WSDL Kurier serves for its SEOS endpoint: one ``Submit`` operation, as every participant has.

Written by Kurier (nothing of the official files is copied): the same contract as the national
exchange's ``EgovEndpoint.wsdl`` (namespace, operation, SOAPAction, string in, string out, SOAP 1.1
document/literal), so a peer's client built from either can call Kurier.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from adapters.seos.soap import MESSAGING_NS, SOAP_ACTION

__all__ = ["endpoint_wsdl"]

_WSDL = """<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:m="{ns}" targetNamespace="{ns}" name="KurierSeosEndpoint">
  <wsdl:documentation>SEOS participant endpoint served by Kurier for {name}</wsdl:documentation>
  <wsdl:types>
    <xs:schema targetNamespace="{ns}" elementFormDefault="qualified">
      <xs:element name="Submit">
        <xs:complexType><xs:sequence>
          <xs:element name="request" type="xs:string" minOccurs="0" nillable="true"/>
        </xs:sequence></xs:complexType>
      </xs:element>
      <xs:element name="SubmitResponse">
        <xs:complexType><xs:sequence>
          <xs:element name="SubmitResult" type="xs:string" minOccurs="0" nillable="true"/>
        </xs:sequence></xs:complexType>
      </xs:element>
    </xs:schema>
  </wsdl:types>
  <wsdl:message name="SubmitIn"><wsdl:part name="parameters" element="m:Submit"/></wsdl:message>
  <wsdl:message name="SubmitOut"><wsdl:part name="parameters" element="m:SubmitResponse"/></wsdl:message>
  <wsdl:portType name="IEGovService">
    <wsdl:operation name="Submit">
      <wsdl:input message="m:SubmitIn"/>
      <wsdl:output message="m:SubmitOut"/>
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="EGovService" type="m:IEGovService">
    <soap:binding transport="http://schemas.xmlsoap.org/soap/http" style="document"/>
    <wsdl:operation name="Submit">
      <soap:operation soapAction="{action}" style="document"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="EGovService">
    <wsdl:port name="EGovService" binding="m:EGovService">
      <soap:address location={location}/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


def endpoint_wsdl(location: str, served: str) -> bytes:
    """The WSDL of the endpoint at ``location`` (an https URL) serving the administration ``served``."""
    name = served.replace("&", "&amp;").replace("<", "&lt;")
    return _WSDL.format(ns=MESSAGING_NS, action=SOAP_ACTION, location=quoteattr(location), name=name).encode()
